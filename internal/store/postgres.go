package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Pool settings for PostgreSQL. Each replica holds at most pgMaxOpenConns
// connections, so N replicas need N×16 of the server's max_connections
// (100 by default, a few of them reserved): put PgBouncer in front beyond
// five replicas. Statements on the request path are short (a credit hold
// is one round trip), so 16 connections serve thousands of requests/s.
//
// PgBouncer in transaction pooling mode: add default_query_exec_mode=exec
// (or simple_protocol) to the URL. By default pgx prepares each statement
// once per connection and runs it by name later, and a transaction pooler
// hands the next transaction to whichever server connection is free, where
// that name is unknown or is another statement ("prepared statement ...
// does not exist / already exists"), unless PgBouncer is 1.21 or newer
// with max_prepared_statements set. pgx's ParseConfig takes the parameter
// out of the URL (it is not sent to the server) and its database/sql
// driver runs every Exec and Query in that mode; the statements the store
// prepares explicitly inside a transaction are prepared, run and closed
// within it, on one server connection. Session pooling needs nothing.
const (
	pgLockTimeout     = "5s"
	pgMaxOpenConns    = 16
	pgMaxIdleConns    = 16
	pgConnMaxIdleTime = 5 * time.Minute
	// Recycling connections now and then lets a failover or a PgBouncer
	// restart drain old server connections.
	pgConnMaxLifetime = 30 * time.Minute
)

// OpenPostgres connects to the PostgreSQL database at rawURL
// (postgres://user:password@host:port/db?sslmode=...; other query
// parameters such as search_path are sent as run-time parameters) and
// migrates it to the current schema. Errors never contain the password.
func OpenPostgres(ctx context.Context, rawURL string) (*DB, error) {
	shown := redactURL(rawURL)
	secrets := urlSecrets(rawURL)
	fail := func(op string, err error) error {
		return redactErr(fmt.Errorf("%s postgres %s: %w", op, shown, err), secrets)
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, fail("open", err)
	}
	if cfg.Password != "" { // also from PGPASSWORD or a passfile
		secrets = append(secrets, cfg.Password)
	}
	if _, set := cfg.RuntimeParams["lock_timeout"]; !set {
		// A statement waiting on a row lock gives up on the server before
		// its caller's deadline (a credit hold waits at most 10 s): a
		// client that timed out must not leave a statement that commits
		// later, unseen. Override with ?lock_timeout=... in the URL.
		cfg.RuntimeParams["lock_timeout"] = pgLockTimeout
	}
	sqlDB := openPGPool(cfg)
	sqlDB.SetMaxOpenConns(pgMaxOpenConns)
	sqlDB.SetMaxIdleConns(pgMaxIdleConns)
	sqlDB.SetConnMaxIdleTime(pgConnMaxIdleTime)
	sqlDB.SetConnMaxLifetime(pgConnMaxLifetime)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fail("open", err)
	}
	s := &DB{db: sqlDB, dialect: DialectPostgres}
	if err := s.migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, fail("migrate", err)
	}
	return s, nil
}

// openPGPool opens PostgreSQL through pgx's own database/sql driver.
func openPGPool(cfg *pgx.ConnConfig) *sql.DB {
	return stdlib.OpenDB(*cfg)
}

// redactURL is rawURL with its password, in the user info or a password
// query parameter, replaced by "xxxxx".
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// urlSecrets lists the passwords rawURL carries.
func urlSecrets(rawURL string) []string {
	var out []string
	u, err := url.Parse(rawURL)
	if err != nil {
		// Best effort on a URL too broken to parse: the text between the
		// scheme's user and the @.
		if _, rest, ok := strings.Cut(rawURL, "://"); ok {
			if userinfo, _, ok := strings.Cut(rest, "@"); ok {
				if _, pw, ok := strings.Cut(userinfo, ":"); ok && pw != "" {
					out = append(out, pw)
				}
			}
		}
		return out
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		out = append(out, pw, url.PathEscape(pw), url.QueryEscape(pw))
	}
	if pw := u.Query().Get("password"); pw != "" {
		out = append(out, pw, url.QueryEscape(pw))
	}
	return out
}

// redactedError replaces secrets in an error's text and keeps the chain
// for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactErr(err error, secrets []string) error {
	msg := err.Error()
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return &redactedError{msg: msg, err: err}
}
