"""The unified to-do centre (统一待办中心) and the application page."""
