-- Admin roles (issue 19, least privilege for operators). An admin key
-- carries one role: owner (everything), operator (keys, accounts,
-- provider keys), billing (credits, budgets, usage, ledger, reports) or
-- viewer (read-only). Caller keys have none (''). Every admin key that
-- existed before roles could do everything, so it becomes owner.
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT '';
UPDATE api_keys SET role = 'owner' WHERE kind = 'admin';
