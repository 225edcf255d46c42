"""WeChat and WeCom QR-code sign-in (方式三：微信、企业微信扫码登录) and binding."""
