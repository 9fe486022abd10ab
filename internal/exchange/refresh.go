package exchange

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// GrantRefreshToken is RFC 6749's refresh grant.
const GrantRefreshToken = "refresh_token"

// RefreshPrefix starts every refresh token (secret scanners match it).
const RefreshPrefix = "xrr-"

// Audit kinds of the refresh grant. token.refresh_reused is the theft
// signal: a spent refresh token came back.
const (
	AuditRefreshed      = "token.refreshed"
	AuditRefreshRefused = "token.refresh_refused"
	AuditRefreshReused  = "token.refresh_reused"
)

// hashRefresh is a refresh token's stored form. The token is 256 random
// bits: a plain SHA-256 already tells a database reader nothing.
func hashRefresh(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// newRefresh stores and returns a refresh token for key k in family.
func (s *Service) newRefresh(ctx context.Context, family string, k keys.Key, issuer, rule string, now, familyEnd time.Time) (string, error) {
	tok := RefreshPrefix + strings.TrimRight(rand.Text()+rand.Text(), "=") // 2 × 130 bits, base32
	err := s.st.CreateRefreshToken(ctx, store.RefreshToken{Hash: hashRefresh(tok), Family: family, KeyID: k.ID, AccountID: k.AccountID,
		Issuer: issuer, Rule: rule, CreatedAt: now.UTC(), ExpiresAt: familyEnd.UTC()})
	if err != nil {
		return "", fmt.Errorf("exchange: %w", err)
	}
	return tok, nil
}

// refresh spends a refresh token for a new key and refresh token. A
// spent (or revoked) one coming back revokes its whole family: the
// legitimate holder and a thief cannot be told apart, so neither keeps
// anything. That includes two concurrent presentations of one token:
// exactly one wins, and the second is a reuse.
func (s *Service) refresh(ctx context.Context, r Request) (Token, error) {
	ev := auditlog.Event{Actor: "exchange", IP: r.IP, Details: map[string]any{}}
	tok, err := s.doRefresh(ctx, r, &ev)
	var xe *Error
	switch {
	case err == nil:
		ev.Kind, ev.Subject = AuditRefreshed, tok.KeyID
		s.onOutcome("refreshed")
	case errors.As(err, &xe):
		if ev.Kind == "" {
			ev.Kind = AuditRefreshRefused
		}
		ev.Details["error"], ev.Details["reason"] = xe.Code, xe.Reason
		s.onOutcome(xe.Reason)
	default:
		ev.Kind = AuditRefreshRefused
		ev.Details["error"], ev.Details["reason"] = CodeServerError, "internal"
		s.onOutcome("internal")
	}
	if aerr := s.audit.Record(ctx, ev); aerr != nil && err == nil {
		return Token{}, fmt.Errorf("exchange: audit: %w", aerr)
	}
	return tok, err
}

func (s *Service) doRefresh(ctx context.Context, r Request, ev *auditlog.Event) (Token, error) {
	if r.RefreshToken == "" {
		return Token{}, refuse(CodeInvalidRequest, "no_refresh_token", "refresh_token is required")
	}
	if r.Scope != "" {
		return Token{}, refuse(CodeInvalidScope, "scope_on_refresh", "a refresh keeps the exchanged token's scope; send no scope")
	}
	now := s.now()
	row, won, err := s.st.SpendRefreshToken(ctx, hashRefresh(r.RefreshToken), now)
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, refuse(CodeInvalidGrant, "unknown_refresh_token", "the refresh token is not valid")
	}
	if err != nil {
		return Token{}, fmt.Errorf("exchange: %w", err)
	}
	ev.AccountID = row.AccountID
	ev.Details["family"], ev.Details["issuer"], ev.Details["rule"] = row.Family, row.Issuer, row.Rule
	if !won {
		ids, err := s.st.RevokeRefreshFamily(ctx, row.Family, now)
		if err != nil {
			return Token{}, fmt.Errorf("exchange: %w", err)
		}
		for _, id := range ids {
			if err := s.minter.Revoke(ctx, id, "exchange"); err != nil && !errors.Is(err, store.ErrNotFound) {
				return Token{}, fmt.Errorf("exchange: revoke family %s: %w", row.Family, err)
			}
		}
		ev.Kind, ev.Subject = AuditRefreshReused, row.Family
		ev.Details["keys_revoked"] = len(ids)
		return Token{}, refuse(CodeInvalidGrant, "refresh_reused", "the refresh token was already used; every token of its family is revoked")
	}
	if !now.Before(row.ExpiresAt) {
		return Token{}, refuse(CodeInvalidGrant, "refresh_expired", "the refresh token has expired")
	}
	is, ok := s.issuer(row.Issuer)
	var ttl time.Duration
	if ok {
		for _, rule := range is.cfg.Rules {
			if rule.Name == row.Rule && rule.RefreshTokens {
				ttl = rule.Key.TTL
			}
		}
	}
	if ttl == 0 {
		return Token{}, refuse(CodeInvalidGrant, "rule_gone", "the rule that issued this token no longer hands out refresh tokens")
	}
	prev, err := s.minter.Get(ctx, row.KeyID)
	if err != nil {
		return Token{}, fmt.Errorf("exchange: %w", err)
	}
	exp := now.Add(ttl)
	if row.ExpiresAt.Before(exp) {
		exp = row.ExpiresAt
	}
	exp = exp.UTC().Truncate(time.Second)
	cidrs := prev.CIDRStrings()
	plain, k, err := s.mint(ctx, keys.CreateParams{AccountID: prev.AccountID, Name: prev.Name, AllowedModels: prev.AllowedModels,
		AllowedEndpoints: prev.AllowedEndpoints, AllowedCIDRs: cidrs, RPM: prev.RPM, TPM: prev.TPM, MaxConcurrent: prev.MaxConcurrent,
		Metadata: prev.Metadata, ExpiresAt: &exp, Actor: "exchange"})
	if err != nil {
		return Token{}, fmt.Errorf("exchange: mint: %w", err)
	}
	rt, err := s.newRefresh(ctx, row.Family, k, row.Issuer, row.Rule, now, row.ExpiresAt)
	if err != nil {
		s.minter.Revoke(ctx, k.ID, "exchange")
		return Token{}, err
	}
	return Token{AccessToken: plain, IssuedTokenType: TokenTypeAccess, ExpiresAt: exp, ExpiresIn: int64(exp.Sub(now).Round(time.Second) / time.Second),
		Scope: renderScope(prev.AllowedModels, prev.AllowedEndpoints), RefreshToken: rt, KeyID: k.ID, AccountID: k.AccountID}, nil
}
