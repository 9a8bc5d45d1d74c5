-- The per-account counters no longer lock (issue 8): an account is locked only per client
-- address, and account-wide failures add delay. Lift the hard locks the old policy left, so an
-- account someone locked out before this release opens for its owner now.
UPDATE login_throttle SET locked_until = NULL WHERE key LIKE 'account:%';
