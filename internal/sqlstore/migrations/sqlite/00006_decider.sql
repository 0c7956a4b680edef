-- The initiator's decider (BeginRequest.decider): a gRPC target or an
-- http(s) base URL, empty if none. Written by Begin, never changed; a
-- TRYING record with a decider is decided at its deadline by the
-- decider's answer instead of being aborted.

-- +goose Up
ALTER TABLE transaction_record ADD COLUMN decider TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE transaction_record DROP COLUMN decider;
