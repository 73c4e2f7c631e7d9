-- wrk script of loadtest/bench/run: 64 KiB CCM_POST uploads. wrk checks its
-- first request() with an HTTP parser that knows only the standard methods:
-- that check is given a POST; every request sent is a CCM_POST. The requests
-- are made in init(), once wrk has set the Host header.
local body = string.rep("0123456789abcdef", 4096)
local check, upload
function init(args)
	check = wrk.format("POST", nil, nil, body)
	upload = wrk.format("CCM_POST", nil, {["Content-Type"] = "application/octet-stream"}, body)
end
function request()
	if check then
		local r = check
		check = nil
		return r
	end
	return upload
end
