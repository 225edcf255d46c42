"""服务管理: department service managers edit services, guides, notices and system entries."""
