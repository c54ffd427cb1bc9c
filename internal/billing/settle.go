package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/feed"
)

// settle brings a purchase's credits in line with its facts, inside the
// caller's transaction, under the purchase's row lock:
//
//  1. paid and not yet granted: grant its credits (one lot);
//  2. a freeze no longer needed (dispute closed, or a clawback is due) is
//     lifted;
//  3. the refunded share (refunds, plus a lost dispute) of the credits is
//     taken back: from what is left of its lot, the rest recorded as owed;
//  4. a dispute still open freezes what is left of the lot.
//
// Each step depends only on the facts and on what earlier settles recorded,
// so settling again changes nothing, and facts arriving in any order end in
// the same state. It tells the user's feed when anything changed here or
// the caller's merge brought news (news), and reports whether anything
// changed here.
func (s *Service) settle(ctx context.Context, tx bun.Tx, id uuid.UUID, news bool) (bool, error) {
	var p Purchase
	if err := withCharges(tx.NewSelect().Model(&p)).Where("purchase.id = ?", id).For("UPDATE OF purchase").Scan(ctx); err != nil {
		return false, fmt.Errorf("lock purchase %s: %w", id, err)
	}
	before := p.fingerprint()
	var disputeAmount int64
	if err := tx.NewRaw(`SELECT coalesce(sum(dispute_amount), 0) FROM stripe_charges
		WHERE (payment_intent_id = ? OR invoice_id = ?) AND dispute_status = 'lost'`, p.PaymentIntentID, p.InvoiceID).Scan(ctx, &disputeAmount); err != nil {
		return false, fmt.Errorf("read lost disputes: %w", err)
	}

	if p.Status == StatusPaid && p.CreditsGranted == 0 && p.Credits > 0 {
		if err := s.grant(ctx, tx, &p); err != nil {
			return false, err
		}
	}
	if p.LotID != nil {
		if err := s.takeBack(ctx, tx, &p, disputeAmount); err != nil {
			return false, err
		}
	}
	changed := p.fingerprint() != before
	if news || changed {
		return changed, feed.AppendTx(ctx, tx, p.UserID, feed.PurchaseChanged{PurchaseID: p.ID, Status: string(p.Status)})
	}
	return false, nil
}

// grant posts the purchase's credits: a pack's once per purchase, a plan's
// once per subscription and period.
func (s *Service) grant(ctx context.Context, tx bun.Tx, p *Purchase) error {
	kind, key := credit.Purchase, "purchase:"+p.ID.String()
	if p.Kind == Plan {
		if p.SubscriptionID == nil || p.PeriodStart == nil {
			return nil // the invoice naming the period has not arrived yet
		}
		kind, key = credit.SubscriptionGrant, fmt.Sprintf("subscription-grant:%s:%d", *p.SubscriptionID, p.PeriodStart.Unix())
	}
	e, err := credit.PostTx(ctx, tx, credit.Posting{
		UserID: p.UserID, Amount: p.Credits, Kind: kind, Ref: credit.Ref{Type: "Purchase", ID: p.ID.String()}, IdempotencyKey: key,
	})
	if err != nil {
		return fmt.Errorf("grant purchase %s: %w", p.ID, err)
	}
	p.LotID, p.CreditsGranted = e.LotID, p.Credits
	_, err = tx.NewRaw("UPDATE purchases SET lot_id = ?, credits_granted = ?, updated_at = now() WHERE id = ?", e.LotID, p.Credits, p.ID).Exec(ctx)
	return err
}

// takeBack claws back the refunded or lost share and keeps a dispute's
// freeze (steps 2 to 4 of settle). A freeze is recorded on the purchase
// only while it is on, so that however the facts arrived, a closed dispute
// leaves the same state.
func (s *Service) takeBack(ctx context.Context, tx bun.Tx, p *Purchase, lostToDispute int64) error {
	var target int64
	if p.Amount > 0 {
		lost := min(p.AmountRefunded+lostToDispute, p.Amount)
		target = p.CreditsGranted * lost / p.Amount
	}
	due := target - (p.CreditsClawedBack + p.CreditsOwed)
	disputeOpen := p.DisputeStatus == DisputeOpen

	if p.FrozenHoldID != nil && (due > 0 || !disputeOpen) {
		// Lifted for good when the dispute closed, or for the clawback
		// (then set again below on what is left).
		if err := credit.UnfreezeTx(ctx, tx, *p.LotID, p.FrozenHoldID); err != nil {
			return err
		}
		p.FrozenHoldID = nil
		if _, err := tx.NewRaw("UPDATE purchases SET frozen_hold_id = NULL, updated_at = now() WHERE id = ?", p.ID).Exec(ctx); err != nil {
			return fmt.Errorf("record freeze lifted: %w", err)
		}
	} else if p.DisputeStatus != "" && !disputeOpen {
		// A freeze that found nothing to hold still marked the lot.
		if err := credit.UnfreezeTx(ctx, tx, *p.LotID, nil); err != nil {
			return err
		}
	}
	if due > 0 {
		taken, owed, err := credit.ClawbackTx(ctx, tx, p.UserID, *p.LotID, due,
			credit.Ref{Type: "Purchase", ID: p.ID.String()}, fmt.Sprintf("clawback:%s:%d", p.ID, target))
		if err != nil {
			return fmt.Errorf("claw back purchase %s: %w", p.ID, err)
		}
		p.CreditsClawedBack += taken
		p.CreditsOwed += owed
		if _, err := tx.NewRaw("UPDATE purchases SET credits_clawed_back = ?, credits_owed = ?, updated_at = now() WHERE id = ?",
			p.CreditsClawedBack, p.CreditsOwed, p.ID).Exec(ctx); err != nil {
			return fmt.Errorf("record clawback: %w", err)
		}
	}
	if disputeOpen && p.FrozenHoldID == nil {
		h, err := credit.FreezeTx(ctx, tx, p.UserID, *p.LotID, credit.Ref{Type: credit.RefFreeze, ID: p.ID.String()},
			fmt.Sprintf("freeze:%s:%d", p.ID, p.CreditsClawedBack+p.CreditsOwed))
		if err != nil {
			return fmt.Errorf("freeze purchase %s: %w", p.ID, err)
		}
		if h != nil && h.Status == credit.HoldHeld {
			p.FrozenHoldID = &h.ID
			if _, err := tx.NewRaw("UPDATE purchases SET frozen_hold_id = ?, updated_at = now() WHERE id = ?", h.ID, p.ID).Exec(ctx); err != nil {
				return fmt.Errorf("record freeze: %w", err)
			}
		}
	}
	return nil
}

// fingerprint is what the user sees of a purchase; a change is news.
type fingerprint struct {
	status                Status
	granted, clawed, owed int64
	refunded              int64
	dispute               Dispute
	frozen                bool
}

func (p *Purchase) fingerprint() fingerprint {
	return fingerprint{p.Status, p.CreditsGranted, p.CreditsClawedBack, p.CreditsOwed, p.AmountRefunded, p.DisputeStatus, p.FrozenHoldID != nil}
}

// purchaseFacts is what Stripe told about a purchase; a merge that changes
// none of it (and settles nothing) was old news.
type purchaseFacts struct {
	status                                                           Status
	credits, amount                                                  int64
	currency, customer, session, invoice, intent, subscription, link string
	periodStart, periodEnd, paidAt                                   int64
}

func (p *Purchase) facts() purchaseFacts {
	return purchaseFacts{
		p.Status, p.Credits, p.Amount, p.Currency, deref(p.CustomerID), deref(p.CheckoutSessionID), deref(p.InvoiceID),
		deref(p.PaymentIntentID), deref(p.SubscriptionID), deref(p.ReceiptURL), unix(p.PeriodStart), unix(p.PeriodEnd), unix(p.PaidAt),
	}
}

func unix(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMicro()
}
