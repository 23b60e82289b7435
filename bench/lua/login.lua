-- POST /v1/login with a fixed account (wrong or right password per LOGIN_PASSWORD).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"bench@example.com","password":"' .. (os.getenv("LOGIN_PASSWORD") or "correct horse battery staple") .. '"}'
