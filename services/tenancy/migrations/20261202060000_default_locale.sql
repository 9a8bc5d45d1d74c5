-- The tenant's default language (BCP 47, canonical case; '' when none): what its people are written
-- to in when they have not chosen a language. Validated by the service.
ALTER TABLE tenants ADD COLUMN default_locale text NOT NULL DEFAULT '';
