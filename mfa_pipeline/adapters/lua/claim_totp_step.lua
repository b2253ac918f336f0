-- KEYS: the factor's last accepted step. ARGV: step, keep_ms. 1 when claimed, 0 for a replay.
if claim_step(KEYS[1], ARGV[1], ARGV[2]) then return 1 end
return 0
