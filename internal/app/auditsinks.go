package app

import (
	"context"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/auditsink"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys/auditlog"
)

// auditSinks ships the audit log to the configured sinks (audit.sinks),
// off the request path: an audit row is committed by the request, and the
// sinks' shippers read it from the store afterwards. Each append here
// nudges them, so a healthy sink gets a row within moments instead of a
// poll interval; rows other processes append (the CLI, other replicas)
// are found by the poll.
type auditSinks struct {
	shippers *auditsink.Shippers
	metrics  *auditsink.Metrics
}

// startAuditSinks starts the sinks' shippers on db (none without sinks).
func startAuditSinks(cfg config.Audit, db *store.DB, log *zap.Logger) (*auditSinks, error) {
	m := auditsink.NewMetrics()
	sh, err := auditsink.Start(cfg.Sinks, db, log, auditsink.Options{Metrics: m})
	if err != nil {
		return nil, err
	}
	if len(cfg.Sinks) > 0 {
		log.Info("shipping the audit log", zap.Int("sinks", len(cfg.Sinks)))
	}
	return &auditSinks{shippers: sh, metrics: m}, nil
}

// store is db as the auditor's store, nudging the shippers after each
// append.
func (s *auditSinks) store(db *store.DB) auditlog.Store {
	return nudgingAudit{DB: db, nudge: s.shippers.Nudge}
}

type nudgingAudit struct {
	*store.DB
	nudge func()
}

func (n nudgingAudit) AppendAudit(ctx context.Context, build func(int64, string) (auditlog.Row, error)) error {
	if err := n.DB.AppendAudit(ctx, build); err != nil {
		return err
	}
	n.nudge()
	return nil
}
