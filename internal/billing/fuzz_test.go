package billing_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// FuzzStripeWebhook posts any body to the Stripe webhook handler over HTTP,
// either under any Stripe-Signature header or signed with the endpoint's
// secret (sign), so that fuzzed events also reach the code that applies
// them. Whatever arrives: no panic; an unsigned request is refused with
// 400 and a code and changes nothing; a signed one is applied (200), refused
// (400) or failed (500), always answered in the error shape with a code.
func FuzzStripeWebhook(f *testing.F) {
	e := newEnv(f)
	buyer := e.newUser(f)
	paid := e.fake.PayCheckout(e.checkout(f, buyer, "pack-100"))
	for _, typ := range []string{"checkout.session.completed", "checkout.session.expired", "checkout.session.async_payment_failed"} {
		ev := e.fake.Event(typ, paid.SessionID)
		f.Add(ev, "", true)
		f.Add(ev, e.fake.Sign(ev)[:20], false)
	}
	f.Add(e.fake.Event("charge.refunded", paid.ChargeID), "", true)
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"ping"}`), "t=1,v1=00", false)

	f.Fuzz(func(t *testing.T, body []byte, header string, sign bool) {
		if sign {
			header = e.fake.Sign(body)
		}
		before := e.rowCounts(t)
		req, err := http.NewRequest(http.MethodPost, e.hook.URL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Stripe-Signature", header)
		resp, err := e.hook.Client().Do(req)
		if err != nil {
			t.Fatalf("post: %v (did the handler panic?)", err)
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch status := resp.StatusCode; {
		case status == http.StatusOK && sign:
			if string(answer) != `{"received":true}` {
				t.Fatalf("200 with %q", answer)
			}
		case status == http.StatusBadRequest || status == http.StatusInternalServerError && sign:
			var out struct {
				Errors []struct {
					Message    string
					Extensions struct{ Code string }
				}
			}
			if err := json.Unmarshal(answer, &out); err != nil || len(out.Errors) != 1 || out.Errors[0].Extensions.Code == "" || out.Errors[0].Message == "" {
				t.Fatalf("%d with %q: want one error with a code and a message", status, answer)
			}
		default:
			t.Fatalf("signed %v: status %d with %q", sign, status, answer)
		}
		if !sign {
			after := e.rowCounts(t)
			for table, n := range before {
				if after[table] != n {
					t.Fatalf("an unsigned request changed %s: %d rows, then %d", table, n, after[table])
				}
			}
		}
	})
}
