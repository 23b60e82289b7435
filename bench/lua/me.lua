-- Any GET with the access token from the environment (GET /v1/me, the admin users page).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ACCESS_TOKEN")
