-- wrk script: keep-alive POSTs with a 1 KiB JSON body (bench/ingest).
local pad = string.rep("x", 1024 - string.len('{"pad":""}'))
wrk.method = "POST"
wrk.path = "/bench"
wrk.body = '{"pad":"' .. pad .. '"}'
wrk.headers["Content-Type"] = "application/json"
