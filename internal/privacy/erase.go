package privacy

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/events"
	"github.com/fastimage/api/internal/mail"
	"github.com/fastimage/api/internal/password"
	"github.com/fastimage/api/internal/storage"
)

// The erasure of an account (a deletion request's job), step by step. Every
// step is safe to repeat, so that an attempt that dies anywhere is simply
// run again from the start (RunWorkers retries it):
//
//  1. Close the account: its status becomes 'deleted' (sign-in and every
//     session stop working, and long-lived connections end as their
//     sessions are rung), sessions are revoked, emailed links deleted.
//  2. Stop what still runs for it: queued generations are canceled and
//     their credits released, running ones asked to stop (their workers
//     stop within a heartbeat); its other requests are rejected unless an
//     export is being built, which is waited for; open direct uploads are
//     waited for until their signed URLs expire, so that nothing is stored
//     under the user's prefix once it has been emptied.
//  3. Delete the content in bounded transactions: works (with their images'
//     rows, generations, prompts and generation events), the feed, security
//     and usage events, sessions, uploads, export downloads.
//  4. Delete every blob: the exports' files and everything under
//     storage.UserPrefix; the prefix must then list nothing.
//  5. Delete the Stripe customer.
//  6. In one transaction: a tombstone user (a new id, no name, an address
//     that is no one's, a password hash no password matches, status
//     'deleted') takes over the rows kept for accounting (RetainedTables),
//     scrubbed of what named the user; the final email is enqueued to the
//     address (and every other mail to or about it dropped); rate-limit
//     counts naming the user are dropped; the user's row is deleted, and
//     with it, by ON DELETE CASCADE, everything else that was theirs.
//
// Once step 6 has committed the request belongs to the tombstone: an
// attempt that finds its request's user is a tombstone has nothing left to
// do. The audit trail names the request, never the user, and so survives.

// CustomerDeleter deletes a user's customer at the payment provider
// (billing.Service).
type CustomerDeleter interface {
	DeleteCustomer(ctx context.Context, userID uuid.UUID) error
}

// Erasure is what the deletion job needs beside the database.
type Erasure struct {
	// Bucket holds the user's blobs, under storage.UserPrefix.
	Bucket storage.Bucket
	// Customers deletes the user's Stripe customer; nil: there is none to
	// delete.
	Customers CustomerDeleter
	// BatchSize bounds the rows one transaction deletes from a large table
	// (a work's batch also takes its images' rows, generations and their
	// events); 0 means 200.
	BatchSize int
	// Patience bounds how long one attempt waits for the user's running
	// generations and exports to stop and their open upload URLs to expire
	// before it fails (and is tried again); 0 means 20 minutes, more than an
	// upload URL lasts.
	Patience time.Duration
}

// RetainedTables are the tables whose rows of an erased user are kept, for
// accounting and to account for the request, under the tombstone that
// stands for the user, with nothing that names them. Every other row that
// refers to a user is deleted with them.
var RetainedTables = []string{
	"credit_accounts", "credit_lots", "credit_entries", "credit_holds",
	"purchases", "subscriptions", "privacy_requests",
}

// TombstoneEmail is the address of the tombstone user id: no one's (the
// .invalid top-level domain never resolves) and unique.
func TombstoneEmail(id uuid.UUID) string {
	return "deleted-" + id.String() + "@deleted.invalid"
}

// Eraser returns the job that carries out deletion requests.
func (s *Service) Eraser(e Erasure) Job {
	if e.BatchSize <= 0 {
		e.BatchSize = 200
	}
	if e.Patience <= 0 {
		e.Patience = 20 * time.Minute
	}
	return func(ctx context.Context, r *Request, progress func(int)) error {
		return s.erase(ctx, e, r, progress)
	}
}

func (s *Service) erase(ctx context.Context, e Erasure, r *Request, progress func(int)) error {
	userID := r.UserID
	var email string
	if err := s.db.NewRaw("SELECT email FROM users WHERE id = ?", userID).Scan(ctx, &email); err != nil {
		return fmt.Errorf("erase: read account: %w", err)
	}
	if email == TombstoneEmail(userID) {
		return nil // an earlier attempt erased it, then stopped before completing the request
	}
	if err := s.closeAccount(ctx, r, userID); err != nil {
		return err
	}
	progress(5)
	if err := s.stopActivity(ctx, e, r, userID); err != nil {
		return err
	}
	progress(10)
	if err := s.deleteContent(ctx, e, userID, func(p int) { progress(10 + p/2) }); err != nil {
		return err
	}
	progress(60)
	if err := s.eraseBlobs(ctx, e, r, userID); err != nil {
		return err
	}
	progress(80)
	if e.Customers != nil {
		if err := e.Customers.DeleteCustomer(ctx, userID); err != nil {
			return fmt.Errorf("erase: %w", err)
		}
		if err := audit(ctx, s.db, r.ID, "payment customer deleted", System, ""); err != nil {
			return err
		}
	}
	progress(90)
	// No progress after this: the user's feed goes with them.
	return s.anonymise(ctx, r, userID)
}

// closeAccount is step 1.
func (s *Service) closeAccount(ctx context.Context, r *Request, userID uuid.UUID) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewRaw("UPDATE users SET status = 'deleted', updated_at = now() WHERE id = ? AND status <> 'deleted'", userID).Exec(ctx); err != nil {
			return fmt.Errorf("erase: close account: %w", err)
		}
		if _, err := tx.NewRaw("UPDATE sessions SET revoked_at = now(), revoked_reason = 'account deleted' WHERE user_id = ? AND revoked_at IS NULL", userID).Exec(ctx); err != nil {
			return fmt.Errorf("erase: revoke sessions: %w", err)
		}
		if err := events.Ring(ctx, tx, events.SessionsTopic(userID.String())); err != nil {
			return fmt.Errorf("erase: ring sessions: %w", err)
		}
		if _, err := tx.NewRaw("DELETE FROM email_tokens WHERE user_id = ?", userID).Exec(ctx); err != nil {
			return fmt.Errorf("erase: delete email links: %w", err)
		}
		return audit(ctx, tx, r.ID, "account closed", System, "every session revoked; sign-in and emailed links stopped")
	})
}

// stopActivity is step 2: it repeats until nothing of the user's runs any
// more, or fails once e.Patience has passed.
func (s *Service) stopActivity(ctx context.Context, e Erasure, r *Request, userID uuid.UUID) error {
	deadline := time.Now().Add(e.Patience) // the worker's own time, not the service's clock
	for {
		busy, uploadsUntil, err := s.stopOnce(ctx, r, userID)
		if err != nil {
			return err
		}
		uploadsOpen := uploadsUntil.After(s.clock.Now())
		if busy == "" && !uploadsOpen {
			return nil
		}
		if uploadsOpen {
			busy += fmt.Sprintf("upload URLs valid until %s; ", uploadsUntil.UTC().Format(time.RFC3339))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("erase: still waiting after %s for %s", e.Patience, busy)
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// stopOnce cancels the user's generations and rejects their other
// requests, and says what still runs (empty: nothing) and until when
// direct-upload URLs signed for them work.
func (s *Service) stopOnce(ctx context.Context, r *Request, userID uuid.UUID) (busy string, uploadsUntil time.Time, err error) {
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		busy = ""
		var gens []struct {
			ID     uuid.UUID  `bun:"id"`
			HoldID *uuid.UUID `bun:"hold_id"`
			Live   bool       `bun:"live"`
		}
		if err := tx.NewRaw(`SELECT id, hold_id, (status = 'running' AND lease_expires_at >= now()) AS live
			FROM generations WHERE user_id = ? AND status IN ('queued', 'running') ORDER BY id FOR UPDATE`, userID).Scan(ctx, &gens); err != nil {
			return fmt.Errorf("erase: find generations: %w", err)
		}
		running := 0
		for _, g := range gens {
			if g.Live {
				// Its worker finishes it as canceled (and releases its
				// credits) at its next heartbeat, which the ring hastens.
				running++
				if _, err := tx.NewRaw("UPDATE generations SET cancel_requested = true WHERE id = ?", g.ID).Exec(ctx); err != nil {
					return fmt.Errorf("erase: stop generation: %w", err)
				}
				if err := events.Ring(ctx, tx, events.CancelTopic(g.ID.String())); err != nil {
					return err
				}
				continue
			}
			// Queued, or its worker died: no worker will store anything for
			// it now (a worker that takes it over sees the cancel request).
			if _, err := tx.NewRaw(`UPDATE generations SET status = 'canceled', cancel_requested = true, finished_at = now(),
				lease_owner = NULL, lease_expires_at = NULL, updated_at = now() WHERE id = ?`, g.ID).Exec(ctx); err != nil {
				return fmt.Errorf("erase: cancel generation: %w", err)
			}
			if g.HoldID != nil {
				if err := credit.ReleaseTx(ctx, tx, *g.HoldID); err != nil && apperr.CodeOf(err) != apperr.Conflict {
					return fmt.Errorf("erase: release credits: %w", err)
				}
			}
		}
		if running > 0 {
			busy += fmt.Sprintf("%d running generation(s); ", running)
		}

		// Requests the deletion overtakes: all but an export being built
		// (its worker stores the file, which step 4 then deletes).
		var others []Request
		if err := tx.NewSelect().Model(&others).
			Where("user_id = ? AND id <> ?", userID, r.ID).
			Where("status IN (?) OR (status = ? AND (kind = ? OR lease_expires_at IS NULL OR lease_expires_at < now()))",
				bun.In([]Status{StatusReceived, StatusVerified}), StatusInProgress, KindCorrection).
			Order("id").For("UPDATE").Scan(ctx); err != nil {
			return fmt.Errorf("erase: find open requests: %w", err)
		}
		for i := range others {
			o := &others[i]
			reason := "The account was deleted."
			o.RejectionReason = &reason
			if err := s.moveTx(ctx, tx, o, StatusRejected, System, "deletion request "+r.ID.String()); err != nil {
				return err
			}
		}
		var exporting int
		if err := tx.NewRaw("SELECT count(*) FROM privacy_requests WHERE user_id = ? AND id <> ? AND status = 'in_progress'", userID, r.ID).
			Scan(ctx, &exporting); err != nil {
			return fmt.Errorf("erase: count running requests: %w", err)
		}
		if exporting > 0 {
			busy += fmt.Sprintf("%d export(s) being built; ", exporting)
		}

		var until sql.NullTime
		if err := tx.NewRaw("SELECT max(expires_at) FROM uploads WHERE user_id = ? AND completed_at IS NULL", userID).Scan(ctx, &until); err != nil {
			return fmt.Errorf("erase: find open uploads: %w", err)
		}
		uploadsUntil = until.Time
		return nil
	})
	return busy, uploadsUntil, err
}

// contentTables are the tables step 3 empties of the user's rows, a batch
// per transaction, largest first; key is a column that picks out rows.
// The rest of what refers to the user goes by ON DELETE CASCADE with their
// row in step 6.
var contentTables = []struct{ table, key string }{
	{"works", "id"}, // with assets, generations (prompts, parameters) and generation events
	{"generations", "id"},
	{"viewer_events", "seq"},
	{"security_events", "id"},
	{"usage_events", "id"},
	{"sessions", "id"},
	{"uploads", "id"},
	{"export_downloads", "id"},
}

// deleteContent is step 3; progress goes from 0 to 100 with the works.
func (s *Service) deleteContent(ctx context.Context, e Erasure, userID uuid.UUID, progress func(int)) error {
	var works int
	if err := s.db.NewRaw("SELECT count(*) FROM works WHERE user_id = ?", userID).Scan(ctx, &works); err != nil {
		return fmt.Errorf("erase: count works: %w", err)
	}
	for _, t := range contentTables {
		deleted := 0
		for {
			res, err := s.db.NewRaw(fmt.Sprintf(`DELETE FROM %[1]s WHERE user_id = ? AND %[2]s IN (
				SELECT %[2]s FROM %[1]s WHERE user_id = ? ORDER BY %[2]s LIMIT ?)`, t.table, t.key),
				userID, userID, e.BatchSize).Exec(ctx)
			if err != nil {
				return fmt.Errorf("erase: delete %s: %w", t.table, err)
			}
			n, _ := res.RowsAffected()
			if n == 0 {
				break
			}
			deleted += int(n)
			if t.table == "works" && works > 0 {
				progress(min(100, deleted*100/works))
			}
		}
	}
	return nil
}

// eraseBlobs is step 4.
func (s *Service) eraseBlobs(ctx context.Context, e Erasure, r *Request, userID uuid.UUID) error {
	// Export files are deleted by key: they need not live under the prefix.
	var keys []string
	if err := s.db.NewRaw("SELECT result_key FROM privacy_requests WHERE user_id = ? AND result_key IS NOT NULL", userID).Scan(ctx, &keys); err != nil {
		return fmt.Errorf("erase: find exports: %w", err)
	}
	for _, k := range keys {
		if err := e.Bucket.Delete(ctx, k); err != nil {
			return fmt.Errorf("erase: delete export: %w", err)
		}
	}
	prefix := storage.UserPrefix(userID)
	n, err := e.Bucket.DeletePrefix(ctx, prefix)
	if err != nil {
		return fmt.Errorf("erase: delete blobs: %w", err)
	}
	left, err := e.Bucket.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("erase: list blobs: %w", err)
	}
	if len(left) > 0 {
		return fmt.Errorf("erase: %d blob(s) still under the user's prefix", len(left))
	}
	return audit(ctx, s.db, r.ID, "files deleted", System, fmt.Sprintf("%d stored file(s) and %d export(s)", n, len(keys)))
}

// anonymise is step 6.
func (s *Service) anonymise(ctx context.Context, r *Request, userID uuid.UUID) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var email string
		if err := tx.NewRaw("SELECT email FROM users WHERE id = ? FOR UPDATE", userID).Scan(ctx, &email); err != nil {
			return fmt.Errorf("erase: lock account: %w", err)
		}
		// Lets this transaction, and only it, move ledger entries to the
		// tombstone (migration 20261201000010).
		if _, err := tx.ExecContext(ctx, "SET LOCAL fastimage.erasure = 'on'"); err != nil {
			return fmt.Errorf("erase: %w", err)
		}
		tomb := uuid.Must(uuid.NewV7())
		if _, err := tx.NewRaw("INSERT INTO users (id, email, name, password_hash, status) VALUES (?, ?, '', ?, 'deleted')",
			tomb, TombstoneEmail(tomb), password.Unusable()).Exec(ctx); err != nil {
			return fmt.Errorf("erase: create tombstone: %w", err)
		}
		old, next := userID.String(), tomb.String()
		for _, q := range []struct {
			what string
			sql  string
			args []any
		}{
			// The ledger: a new account with the same balances takes the
			// lots, holds and entries, then the old one goes. The user's id
			// spelled out in keys (the sign-up bonus's) becomes the
			// tombstone's.
			{"credit account", "INSERT INTO credit_accounts (user_id, balance, held, owed, updated_at) SELECT ?, balance, held, owed, updated_at FROM credit_accounts WHERE user_id = ?", []any{tomb, userID}},
			{"credit lots", "UPDATE credit_lots SET user_id = ? WHERE user_id = ?", []any{tomb, userID}},
			{"credit holds", `UPDATE credit_holds SET user_id = ?, idempotency_key = replace(idempotency_key, ?, ?),
				reference_id = replace(reference_id, ?, ?) WHERE user_id = ?`, []any{tomb, old, next, old, next, userID}},
			{"credit entries", `UPDATE credit_entries SET user_id = ?, idempotency_key = replace(idempotency_key, ?, ?),
				reference_id = replace(reference_id, ?, ?) WHERE user_id = ?`, []any{tomb, old, next, old, next, userID}},
			{"old credit account", "DELETE FROM credit_accounts WHERE user_id = ?", []any{userID}},
			// Payments keep amounts, dates and Stripe's ids of the payments
			// (refunds and disputes still arrive by them); not the customer,
			// the links, or the key the client chose.
			{"purchases", `UPDATE purchases SET user_id = ?, customer_id = NULL, checkout_url = NULL, receipt_url = NULL,
				idempotency_key = NULL, updated_at = now() WHERE user_id = ?`, []any{tomb, userID}},
			{"subscriptions", "UPDATE subscriptions SET user_id = ?, customer_id = NULL, updated_at = now() WHERE user_id = ?", []any{tomb, userID}},
			// Requests keep what was asked, when and what became of it; not
			// what the user wrote, nor the export's file.
			{"privacy requests", `UPDATE privacy_requests SET user_id = ?,
				field = CASE WHEN field IS NULL THEN NULL ELSE '(erased)' END, value = NULL, note = NULL,
				result_key = NULL, result_bytes = NULL, result_sha256 = NULL, result_expires_at = NULL, error = NULL,
				updated_at = now() WHERE user_id = ?`, []any{tomb, userID}},
			// Support messages sent signed out from the address are theirs too.
			{"support messages", "DELETE FROM support_messages WHERE user_id = ? OR lower(email) = ?", []any{userID, email}},
			// Mail to or about the user, sent or not, goes; the final email
			// is enqueued after this.
			{"mail", `DELETE FROM mail_outbox WHERE to_address = ?
				OR strpos(lower(subject || ' ' || text_body || ' ' || html_body), ?) > 0
				OR strpos(lower(subject || ' ' || text_body || ' ' || html_body), ?) > 0`, []any{email, email, old}},
			{"rate-limit counts", "DELETE FROM rate_events WHERE strpos(key, ?) > 0 OR strpos(key, ?) > 0", []any{email, old}},
		} {
			if _, err := tx.NewRaw(q.sql, q.args...).Exec(ctx); err != nil {
				return fmt.Errorf("erase: %s: %w", q.what, err)
			}
		}
		if err := s.outbox.Enqueue(ctx, tx, finalMessage(email, r.ID)); err != nil {
			return fmt.Errorf("erase: final email: %w", err)
		}
		if _, err := tx.NewRaw("DELETE FROM users WHERE id = ?", userID).Exec(ctx); err != nil {
			return fmt.Errorf("erase: delete account: %w", err)
		}
		return audit(ctx, tx, r.ID, "account erased", System,
			"personal data deleted; ledger, payments and privacy requests kept under tombstone "+next)
	})
}

// finalMessage is the last email to the address of an erased account. It
// stays in the outbox until it is delivered, and mail.ForgetDelivered
// deletes it a week after.
func finalMessage(to string, requestID uuid.UUID) mail.Message {
	intro := "As you asked, your FastImage account is being deleted: your works, images, prompts, sessions and everything else in it are erased, and this address is removed from our records. This is the last email we send you."
	outro := "Records of payments are kept for accounting, without your name or email address. You can sign up again with this address at any time; that makes a new, empty account."
	text := intro + "\n\n" + outro + "\n\nRequest id: " + requestID.String() + "\n\n— FastImage\n"
	return mail.Message{Kind: "account_deleted", To: to, Subject: "Your FastImage account is being deleted", Text: text}
}
