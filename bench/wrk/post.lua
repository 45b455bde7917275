-- POST {"name":"Ada"} as JSON to the path given on the wrk command line.
wrk.method = "POST"
wrk.body = '{"name":"Ada"}'
wrk.headers["Content-Type"] = "application/json"
