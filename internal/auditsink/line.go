// Package auditsink streams the audit log out of the database to
// receivers an operator configures (audit.sinks): an HTTPS webhook of
// signed JSON lines, or syslog (RFC 5424 over TCP, TLS optional).
//
// Delivery is at least once and in seq order. Each sink has a cursor in
// the database, the highest seq its receiver acknowledged; a shipper reads
// the rows after it, delivers them in batches, and moves the cursor only
// on an acknowledgement. A receiver that is down is retried with capped,
// jittered backoff and loses nothing: a restart, or another replica taking
// the sink's lease over, resumes after the cursor. Receivers dedupe by seq.
// Nothing here runs on the request path: the audit row is committed
// first, and shippers read it from the store afterwards.
package auditsink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/xroute/xroute/keys/auditlog"
)

// Line is one audit row as sinks and `xroute audit export` write it: one
// JSON object per line. MAC is the row's chain MAC (hex HMAC-SHA256 under
// the vault's audit key, or SHA-256 for rows of older versions, KeyTerm 0),
// PrevHash the previous row's, so a receiver holding the log can see a
// row is missing or was changed (it cannot recompute the MACs: the key
// stays in the vault).
type Line struct {
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Kind      string          `json:"kind"`
	Actor     string          `json:"actor"`
	AccountID string          `json:"account_id,omitempty"`
	Subject   string          `json:"subject,omitempty"`
	IP        string          `json:"ip,omitempty"`
	Details   json.RawMessage `json:"details"`
	PrevHash  string          `json:"prev_hash"`
	MAC       string          `json:"mac"`
	KeyTerm   uint32          `json:"key_term"`
}

// LineOf is r as a Line.
func LineOf(r auditlog.Row) Line {
	det := json.RawMessage(r.Details)
	if !json.Valid(det) {
		// Stored by Record as JSON; anything else is carried as a string
		// so that one bad row cannot make the whole batch invalid JSON.
		det, _ = json.Marshal(r.Details)
	}
	return Line{Seq: r.Seq, Time: time.UnixMilli(r.At).UTC(), Kind: r.Kind, Actor: r.Actor, AccountID: r.AccountID,
		Subject: r.Subject, IP: r.IP, Details: det, PrevHash: r.PrevHash, MAC: r.Hash, KeyTerm: r.KeyTerm}
}

// AppendJSONL appends rows to buf as JSON lines (each ends in "\n").
func AppendJSONL(buf []byte, rows []auditlog.Row) []byte {
	for _, r := range rows {
		b, _ := json.Marshal(LineOf(r)) // a Line always marshals
		buf = append(buf, b...)
		buf = append(buf, '\n')
	}
	return buf
}

// Sign is the X-Xroute-Signature value of body sent at t (unix seconds):
// t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>"> under secret. Every webhook
// xroute sends (anomaly and budget alerts, audit sinks) is signed so.
func Sign(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}
