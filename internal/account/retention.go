package account

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// retentionBatch bounds the rows one statement of the retention job
// touches, so that none holds its locks for long.
const retentionBatch = 5000

// PurgeEndedSessions deletes the sessions that ended before cutoff: signed
// out or revoked, past their lifetime, or unused for longer than idle
// (internal: the retention job). It returns how many it deleted.
func PurgeEndedSessions(ctx context.Context, idb bun.IDB, cutoff time.Time, idle time.Duration) (int, error) {
	return deleteBatches(ctx, idb, "ended sessions", `DELETE FROM sessions WHERE id IN (
		SELECT id FROM sessions
		WHERE least(coalesce(revoked_at, 'infinity'), expires_at, last_seen_at + ?::interval) < ?
		LIMIT ?)`, fmt.Sprintf("%d seconds", int64(idle.Seconds())), cutoff, retentionBatch)
}

// PurgeSpentEmailTokens deletes the emailed links that ended before cutoff:
// used, replaced by a newer one (voided), or expired (internal: the
// retention job). It returns how many it deleted.
func PurgeSpentEmailTokens(ctx context.Context, idb bun.IDB, cutoff time.Time) (int, error) {
	return deleteBatches(ctx, idb, "spent email links", `DELETE FROM email_tokens WHERE id IN (
		SELECT id FROM email_tokens
		WHERE least(coalesce(used_at, 'infinity'), coalesce(voided_at, 'infinity'), expires_at) < ?
		LIMIT ?)`, cutoff, retentionBatch)
}

// PurgeSecurityEvents deletes the security events recorded before cutoff
// (internal: the retention job). It returns how many it deleted.
func PurgeSecurityEvents(ctx context.Context, idb bun.IDB, cutoff time.Time) (int, error) {
	return deleteBatches(ctx, idb, "old security events", `DELETE FROM security_events WHERE id IN (
		SELECT id FROM security_events WHERE created_at < ? LIMIT ?)`, cutoff, retentionBatch)
}

// TruncateSecurityEventIPs cuts the IP address of every security event
// recorded before cutoff to its network, IPv4 to /24 and IPv6 to /48, once
// (internal: the retention job). Security events are append-only; the
// database lets this one change through only in a transaction that says it
// is the retention job (fastimage.retention, set with SET LOCAL), and only
// as truncate_ip would make it. It returns how many events it changed.
func TruncateSecurityEventIPs(ctx context.Context, db *bun.DB, cutoff time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "SET LOCAL fastimage.retention = 'on'"); err != nil {
				return err
			}
			res, err := tx.NewRaw(`UPDATE security_events SET ip = truncate_ip(ip), ip_truncated = true
				WHERE id IN (SELECT id FROM security_events WHERE NOT ip_truncated AND created_at < ? LIMIT ?)`,
				cutoff, retentionBatch).Exec(ctx)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("truncate security event IPs: %w", err)
		}
		total += int(n)
		if n < retentionBatch {
			return total, nil
		}
	}
}

// deleteBatches runs a DELETE of at most retentionBatch rows until it
// deletes fewer, and returns how many rows it deleted in all.
func deleteBatches(ctx context.Context, idb bun.IDB, what, query string, args ...any) (int, error) {
	total := 0
	for {
		res, err := idb.NewRaw(query, args...).Exec(ctx)
		if err != nil {
			return total, fmt.Errorf("purge %s: %w", what, err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
		if n < retentionBatch {
			return total, nil
		}
	}
}
