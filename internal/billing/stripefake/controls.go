package stripefake

import (
	"time"
)

// What a test does in Stripe's place: sets up prices, has customers pay,
// renews, refunds and disputes. Each fails the test on misuse.

// Payment names the objects one payment made.
type Payment struct {
	SessionID       string
	PaymentIntentID string
	ChargeID        string
	SubscriptionID  string
	InvoiceID       string
}

// AddPrice creates an active Price with lookupKey: one-time when interval
// is empty, else recurring every "month" or "year". It returns its id.
func (f *Fake) AddPrice(lookupKey string, unitAmount int64, currency, interval string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var recurring any
	typ := "one_time"
	if interval != "" {
		recurring, typ = obj{"interval": interval, "interval_count": int64(1), "usage_type": "licensed"}, "recurring"
	}
	product := f.add("product", f.newID("prod"), obj{"name": lookupKey, "active": true})
	return f.add("price", f.newID("price"), obj{
		"active": true, "currency": currency, "unit_amount": unitAmount, "lookup_key": lookupKey,
		"type": typ, "recurring": recurring, "product": product["id"], "billing_scheme": "per_unit",
	})["id"].(string)
}

// PayCheckout completes the open Checkout Session id, paid at once. A
// payment session gets a succeeded payment intent and its charge; a
// subscription session starts an active subscription whose first invoice
// (billing_reason subscription_create) is paid for the first period.
func (f *Fake) PayCheckout(id string) Payment {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.openSession(id)
	price := f.objects[s["_price"].(string)]
	amount := s["amount_total"].(int64)
	s["status"], s["payment_status"], s["url"] = "complete", "paid", nil
	if s["mode"] == "payment" {
		pi, ch := f.charge(s["customer"], amount, s["currency"], s["_payment_intent_metadata"], nil)
		s["payment_intent"] = pi
		return Payment{SessionID: id, PaymentIntentID: pi, ChargeID: ch}
	}
	now := f.now()
	sub := f.add("subscription", f.newID("sub"), obj{
		"customer": s["customer"], "status": "active", "metadata": s["_subscription_metadata"],
		"items": obj{"object": "list", "url": "/v1/subscription_items", "has_more": false, "data": []obj{{
			"id": f.newID("si"), "object": "subscription_item", "price": embed(price), "quantity": s["_quantity"],
		}}},
		"current_period_start": now.Unix(), "current_period_end": periodEnd(price, now).Unix(),
		"cancel_at_period_end": false, "cancel_at": nil, "canceled_at": nil, "ended_at": nil, "latest_invoice": nil,
		"_price": price["id"], "_quantity": s["_quantity"],
	})
	p := f.invoice(sub, "subscription_create", true)
	s["subscription"], s["invoice"] = p.SubscriptionID, p.InvoiceID
	p.SessionID = id
	return p
}

// PayCheckoutLater completes the payment-mode Checkout Session id with a
// payment still on its way (a bank debit): complete, unpaid. FinishPayment
// ends it.
func (f *Fake) PayCheckoutLater(id string) Payment {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.openSession(id)
	if s["mode"] != "payment" {
		f.tb.Fatalf("stripefake: PayCheckoutLater(%s): only payment sessions pay later here", id)
	}
	pi := f.add("payment_intent", f.newID("pi"), obj{
		"amount": s["amount_total"], "currency": s["currency"], "customer": s["customer"], "metadata": s["_payment_intent_metadata"],
		"status": "processing", "latest_charge": nil, "invoice": nil,
	})
	s["status"], s["url"], s["payment_intent"] = "complete", nil, pi["id"]
	return Payment{SessionID: id, PaymentIntentID: pi["id"].(string)}
}

// FinishPayment ends the payment of a session paid later: it succeeds
// (ok: a charge, and the session is paid) or fails (the session stays
// unpaid).
func (f *Fake) FinishPayment(id string, ok bool) Payment {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.find("checkout.session", id)
	if s == nil || s["payment_intent"] == nil || s["payment_status"] != "unpaid" {
		f.tb.Fatalf("stripefake: FinishPayment(%s): not a session paid later", id)
	}
	pi := f.objects[s["payment_intent"].(string)]
	p := Payment{SessionID: id, PaymentIntentID: pi["id"].(string)}
	if !ok {
		pi["status"] = "requires_payment_method"
		return p
	}
	ch := f.add("charge", f.newID("ch"), obj{
		"amount": pi["amount"], "amount_captured": pi["amount"], "amount_refunded": int64(0), "refunded": false, "disputed": false,
		"currency": pi["currency"], "customer": pi["customer"], "payment_intent": pi["id"], "invoice": nil, "paid": true, "status": "succeeded",
	})
	pi["status"], pi["latest_charge"] = "succeeded", ch["id"]
	s["payment_status"] = "paid"
	p.ChargeID = ch["id"].(string)
	return p
}

// ExpireCheckout lets the open Checkout Session id run out unpaid.
func (f *Fake) ExpireCheckout(id string) {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.openSession(id)
	s["status"], s["url"] = "expired", nil
}

// RenewSubscription moves the subscription on to its next period and pays
// that period's invoice (billing_reason subscription_cycle); with paid
// false the card is declined: the invoice stays open and the subscription
// goes past_due until PayInvoice.
func (f *Fake) RenewSubscription(subID string, paid bool) Payment {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	sub := f.subscription(subID)
	start := time.Unix(sub["current_period_end"].(int64), 0)
	sub["current_period_start"] = start.Unix()
	sub["current_period_end"] = periodEnd(f.objects[sub["_price"].(string)], start).Unix()
	return f.invoice(sub, "subscription_cycle", paid)
}

// PayInvoice pays the open invoice id, as Stripe's retry of a declined
// renewal does.
func (f *Fake) PayInvoice(id string) Payment {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := f.find("invoice", id)
	if inv == nil || inv["status"] != "open" {
		f.tb.Fatalf("stripefake: PayInvoice: no open invoice %s", id)
	}
	return f.payInvoice(inv)
}

// BillAgain pays a second invoice for the subscription's current period, as
// a duplicate charge would.
func (f *Fake) BillAgain(subID string) Payment {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.invoice(f.subscription(subID), "subscription_cycle", true)
}

// SetSubscription sets fields of the subscription subID, e.g.
// {"status": "canceled", "ended_at": t.Unix()}; timestamps are int64.
func (f *Fake) SetSubscription(subID string, fields map[string]any) {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	sub := f.subscription(subID)
	for k, v := range fields {
		sub[k] = v
	}
}

// Refund refunds amount of the charge and returns the refund's id.
func (f *Fake) Refund(chargeID string, amount int64) string {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.find("charge", chargeID)
	if ch == nil {
		f.tb.Fatalf("stripefake: Refund: no charge %s", chargeID)
	}
	status, answer := f.refund(ch, amount)
	if status != 200 {
		f.tb.Fatalf("stripefake: Refund(%s, %d): %v", chargeID, amount, answer)
	}
	return answer.(obj)["id"].(string)
}

// Dispute opens a dispute of amount on the charge and returns its id.
func (f *Fake) Dispute(chargeID string, amount int64) string {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.find("charge", chargeID)
	if ch == nil {
		f.tb.Fatalf("stripefake: Dispute: no charge %s", chargeID)
	}
	ch["disputed"] = true
	return f.add("dispute", f.newID("dp"), obj{
		"amount": amount, "charge": chargeID, "payment_intent": ch["payment_intent"], "currency": ch["currency"],
		"status": "needs_response", "reason": "fraudulent", "is_charge_refundable": false,
	})["id"].(string)
}

// CloseDispute closes the dispute id, won or lost.
func (f *Fake) CloseDispute(id string, won bool) {
	f.tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.find("dispute", id)
	if d == nil {
		f.tb.Fatalf("stripefake: CloseDispute: no dispute %s", id)
	}
	d["status"] = "lost"
	if won {
		d["status"] = "won"
	}
}

func (f *Fake) openSession(id string) obj {
	s := f.find("checkout.session", id)
	if s == nil || s["status"] != "open" {
		f.tb.Fatalf("stripefake: no open Checkout Session %s", id)
	}
	return s
}

func (f *Fake) subscription(id string) obj {
	sub := f.find("subscription", id)
	if sub == nil {
		f.tb.Fatalf("stripefake: no subscription %s", id)
	}
	return sub
}

// charge records a succeeded payment intent and its charge, and returns
// their ids.
func (f *Fake) charge(customer any, amount int64, currency, metadata, invoice any) (pi, ch string) {
	pi, ch = f.newID("pi"), f.newID("ch")
	f.add("payment_intent", pi, obj{
		"amount": amount, "currency": currency, "customer": customer, "metadata": metadata,
		"status": "succeeded", "latest_charge": ch, "invoice": invoice,
	})
	f.add("charge", ch, obj{
		"amount": amount, "amount_captured": amount, "amount_refunded": int64(0), "refunded": false, "disputed": false,
		"currency": currency, "customer": customer, "payment_intent": pi, "invoice": invoice, "paid": true, "status": "succeeded",
	})
	return pi, ch
}

// invoice records an invoice for the subscription's current period: paid
// (with its payment intent and charge), or open after a failed attempt.
func (f *Fake) invoice(sub obj, reason string, paid bool) Payment {
	price := f.objects[sub["_price"].(string)]
	amount := price["unit_amount"].(int64) * sub["_quantity"].(int64)
	id := f.newID("in")
	start, end := sub["current_period_start"], sub["current_period_end"]
	inv := f.add("invoice", id, obj{
		"customer": sub["customer"], "subscription": sub["id"], "subscription_details": obj{"metadata": sub["metadata"]},
		"billing_reason": reason, "status": "open", "paid": false, "attempted": true, "amount_due": amount, "amount_paid": int64(0),
		"amount_remaining": amount, "currency": price["currency"], "period_start": start, "period_end": end,
		"lines": obj{"object": "list", "url": "/v1/invoices/" + id + "/lines", "has_more": false, "data": []obj{{
			"id": f.newID("il"), "object": "line_item", "type": "subscription", "subscription": sub["id"], "amount": amount,
			"currency": price["currency"], "quantity": sub["_quantity"], "price": embed(price), "period": obj{"start": start, "end": end},
		}}},
		"payment_intent": nil, "charge": nil, "hosted_invoice_url": f.URL + "/invoice/" + id,
		"status_transitions": obj{"finalized_at": f.now().Unix(), "paid_at": nil},
	})
	sub["latest_invoice"] = id
	if !paid {
		sub["status"] = "past_due"
		return Payment{SubscriptionID: sub["id"].(string), InvoiceID: id}
	}
	return f.payInvoice(inv)
}

// payInvoice pays the open invoice inv.
func (f *Fake) payInvoice(inv obj) Payment {
	amount := inv["amount_due"].(int64)
	pi, ch := f.charge(inv["customer"], amount, inv["currency"], obj{}, inv["id"])
	inv["status"], inv["paid"], inv["amount_paid"], inv["amount_remaining"] = "paid", true, amount, int64(0)
	inv["payment_intent"], inv["charge"] = pi, ch
	inv["status_transitions"].(obj)["paid_at"] = f.now().Unix()
	sub := f.objects[inv["subscription"].(string)]
	if sub["status"] == "past_due" {
		sub["status"] = "active"
	}
	return Payment{PaymentIntentID: pi, ChargeID: ch, SubscriptionID: sub["id"].(string), InvoiceID: inv["id"].(string)}
}

// periodEnd is when a period of price starting at start ends.
func periodEnd(price obj, start time.Time) time.Time {
	if rec, ok := price["recurring"].(obj); ok && rec["interval"] == "year" {
		return start.AddDate(1, 0, 0)
	}
	return start.AddDate(0, 1, 0)
}
