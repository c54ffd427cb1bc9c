package stripefake

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
)

// The API endpoints billing calls. Each runs under f.mu.

func (f *Fake) createCustomer(r *http.Request) (int, any) {
	return http.StatusOK, f.add("customer", f.newID("cus"), obj{
		"email": nullable(r.Form.Get("email")), "name": nullable(r.Form.Get("name")), "metadata": hash(r.Form, "metadata"),
	})
}

// deleteCustomer forgets the customer and, as Stripe does, ends its
// subscriptions at once.
func (f *Fake) deleteCustomer(r *http.Request) (int, any) {
	id := r.PathValue("id")
	if f.find("customer", id) == nil {
		return missing("customer", "id", id)
	}
	delete(f.objects, id)
	f.order = slices.DeleteFunc(f.order, func(o string) bool { return o == id })
	now := f.now().Unix()
	for _, o := range f.objects {
		if o["object"] == "subscription" && o["customer"] == id && o["status"] != "canceled" {
			o["status"], o["canceled_at"], o["ended_at"] = "canceled", now, now
		}
	}
	return http.StatusOK, obj{"id": id, "object": "customer", "deleted": true}
}

func (f *Fake) listPrices(r *http.Request) (int, any) {
	keys := array(r.Form, "lookup_keys")
	return f.list(r, "price", "/v1/prices", func(p obj) bool {
		return len(keys) == 0 || slices.Contains(keys, p["lookup_key"].(string))
	})
}

func (f *Fake) createCheckoutSession(r *http.Request) (int, any) {
	mode := r.Form.Get("mode")
	if mode != "payment" && mode != "subscription" {
		return invalid("mode", "Invalid mode: must be one of payment or subscription (setup is not faked).")
	}
	if r.Form.Get("success_url") == "" {
		return invalid("success_url", "Missing required param: success_url.")
	}
	customer := r.Form.Get("customer")
	if customer != "" && f.find("customer", customer) == nil {
		return missing("customer", "customer", customer)
	}
	priceID := r.Form.Get("line_items[0][price]")
	price := f.find("price", priceID)
	if price == nil {
		return missing("price", "line_items[0][price]", priceID)
	}
	if r.Form.Has("line_items[1][price]") {
		return invalid("line_items", "The fake sells one line item per session.")
	}
	recurring := price["recurring"] != nil
	if mode == "subscription" && !recurring {
		return invalid("line_items[0][price]", "You must provide at least one recurring price in `subscription` mode when using prices.")
	}
	if mode == "payment" && recurring {
		return invalid("line_items[0][price]", "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.")
	}
	quantity := int64(1)
	if q := r.Form.Get("line_items[0][quantity]"); q != "" {
		n, err := strconv.ParseInt(q, 10, 64)
		if err != nil || n < 1 {
			return invalid("line_items[0][quantity]", "Invalid quantity: "+q)
		}
		quantity = n
	}
	id := f.newID("cs_test")
	amount := price["unit_amount"].(int64) * quantity
	return http.StatusOK, f.add("checkout.session", id, obj{
		"mode": mode, "status": "open", "payment_status": "unpaid",
		"customer": nullable(customer), "client_reference_id": nullable(r.Form.Get("client_reference_id")),
		"metadata": hash(r.Form, "metadata"), "amount_subtotal": amount, "amount_total": amount, "currency": price["currency"],
		"success_url": r.Form.Get("success_url"), "cancel_url": nullable(r.Form.Get("cancel_url")),
		"url":           f.URL + "/pay/" + id,
		"automatic_tax": obj{"enabled": r.Form.Get("automatic_tax[enabled]") == "true", "status": nil},
		"expires_at":    f.now().Unix() + 24*3600, "payment_intent": nil, "subscription": nil, "invoice": nil,
		"_price": priceID, "_quantity": quantity,
		"_subscription_metadata":   hash(r.Form, "subscription_data[metadata]"),
		"_payment_intent_metadata": hash(r.Form, "payment_intent_data[metadata]"),
	})
}

func (f *Fake) listCheckoutSessions(r *http.Request) (int, any) {
	return f.list(r, "checkout.session", "/v1/checkout/sessions", func(s obj) bool {
		return matches(r, s, "status", "customer", "payment_intent", "subscription")
	})
}

func (f *Fake) listInvoices(r *http.Request) (int, any) {
	return f.list(r, "invoice", "/v1/invoices", func(inv obj) bool {
		return matches(r, inv, "status", "customer", "subscription")
	})
}

// matches applies a list request's equality filters on fields.
func matches(r *http.Request, o obj, fields ...string) bool {
	for _, k := range fields {
		if v := r.Form.Get(k); v != "" && o[k] != v {
			return false
		}
	}
	return true
}

func (f *Fake) getSubscription(r *http.Request) (int, any) {
	sub := f.find("subscription", r.PathValue("id"))
	if sub == nil {
		return missing("subscription", "id", r.PathValue("id"))
	}
	return http.StatusOK, sub
}

func (f *Fake) updateSubscription(r *http.Request) (int, any) {
	sub := f.find("subscription", r.PathValue("id"))
	if sub == nil {
		return missing("subscription", "id", r.PathValue("id"))
	}
	if sub["status"] == "canceled" || sub["status"] == "incomplete_expired" {
		return invalid("", "A canceled subscription can only update its cancellation_details and metadata.")
	}
	for k := range r.Form {
		if k != "cancel_at_period_end" && k != "expand[0]" {
			return invalid(k, "Received unknown parameter: "+k+" (the fake updates cancel_at_period_end only).")
		}
	}
	switch r.Form.Get("cancel_at_period_end") {
	case "true":
		sub["cancel_at_period_end"], sub["cancel_at"], sub["canceled_at"] = true, sub["current_period_end"], f.now().Unix()
	case "false":
		sub["cancel_at_period_end"], sub["cancel_at"], sub["canceled_at"] = false, nil, nil
	}
	return http.StatusOK, sub
}

func (f *Fake) createRefund(r *http.Request) (int, any) {
	chargeID := r.Form.Get("charge")
	if pi := r.Form.Get("payment_intent"); pi != "" {
		intent := f.find("payment_intent", pi)
		if intent == nil {
			return missing("payment_intent", "payment_intent", pi)
		}
		chargeID, _ = intent["latest_charge"].(string)
	}
	ch := f.find("charge", chargeID)
	if ch == nil {
		return missing("charge", "charge", chargeID)
	}
	amount := ch["amount"].(int64) - ch["amount_refunded"].(int64)
	if a := r.Form.Get("amount"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 1 {
			return invalid("amount", "Invalid positive integer: "+a)
		}
		amount = n
	}
	return f.refund(ch, amount)
}

// refund refunds amount of charge ch, as the API and Refund do.
func (f *Fake) refund(ch obj, amount int64) (int, any) {
	left := ch["amount"].(int64) - ch["amount_refunded"].(int64)
	if left == 0 {
		return http.StatusBadRequest, stripeError("invalid_request_error", "charge_already_refunded", "", "Charge "+ch["id"].(string)+" has already been refunded.")
	}
	if amount > left {
		return invalid("amount", "Refund amount ("+strconv.FormatInt(amount, 10)+") is greater than unrefunded amount on charge ("+strconv.FormatInt(left, 10)+")")
	}
	ch["amount_refunded"] = ch["amount_refunded"].(int64) + amount
	ch["refunded"] = ch["amount_refunded"] == ch["amount"]
	return http.StatusOK, f.add("refund", f.newID("re"), obj{
		"amount": amount, "charge": ch["id"], "payment_intent": ch["payment_intent"], "currency": ch["currency"], "status": "succeeded",
	})
}

func (f *Fake) createPortalSession(r *http.Request) (int, any) {
	customer := r.Form.Get("customer")
	if f.find("customer", customer) == nil {
		return missing("customer", "customer", customer)
	}
	id := f.newID("bps")
	return http.StatusOK, f.add("billing_portal.session", id, obj{
		"customer": customer, "return_url": nullable(r.Form.Get("return_url")), "url": f.URL + "/portal/" + id,
	})
}

// embed is an object as it appears inside another, frozen as it is now.
func embed(o obj) json.RawMessage { return render(o) }
