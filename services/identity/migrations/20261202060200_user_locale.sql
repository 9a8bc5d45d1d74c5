-- The language a user is written to in: a BCP 47 tag in canonical case (`ar`, `zh-Hant-TW`), or
-- '' when the user has none (notifiers then use the tenant's default, then the request's
-- Accept-Language). Validated by the service.
ALTER TABLE users ADD COLUMN locale text NOT NULL DEFAULT '';
