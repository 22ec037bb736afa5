-- One row by a random key on each request, reported as wrk_report.lua reports (one JSON line):
--   wrk -t2 -c32 -d10s -s wrk_random_id.lua http://127.0.0.1:8000 -- '/api/items/{id}' 1000000
-- {id} in the path becomes a whole number drawn from 1..N; each thread draws from its own seed,
-- so runs ask for the same keys in the same order.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_report.lua")

local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

local template, largest
init = function(args)
  template, largest = args[1], tonumber(args[2])
  math.randomseed(seed)
end

request = function()
  local path = template:gsub("{id}", tostring(math.random(1, largest)))
  return wrk.format("GET", path)
end
