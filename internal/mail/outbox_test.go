package mail_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fastimage/api/internal/apperr"
	"github.com/fastimage/api/internal/db/dbtest"
	"github.com/fastimage/api/internal/mail"
)

func TestOutboxSendLatest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := mail.NewOutbox(dbtest.New(t))

	first := testMessage()
	second := testMessage()
	second.Text = "Open https://fastimage.example/verify?token=def to verify."
	reset := testMessage()
	reset.Kind = "password_reset"
	other := testMessage()
	other.To = "bob@example.com"
	for _, m := range []mail.Message{first, second, reset, other} {
		if err := o.Send(ctx, m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}

	for _, tc := range []struct {
		name     string
		to, kind string
		want     mail.Message
	}{
		{"newest of its kind", "ada@example.com", "verify_email", second},
		{"other kind", "ada@example.com", "password_reset", reset},
		{"other recipient", "bob@example.com", "verify_email", other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := o.Latest(ctx, tc.to, tc.kind)
			if err != nil {
				t.Fatalf("Latest: %v", err)
			}
			if got.Message != tc.want {
				t.Errorf("got %+v, want %+v", got.Message, tc.want)
			}
			if got.ID == "" || time.Since(got.CreatedAt).Abs() > time.Minute {
				t.Errorf("got ID %q, CreatedAt %v, want an ID and about now", got.ID, got.CreatedAt)
			}
		})
	}

	if _, err := o.Latest(ctx, "nobody@example.com", "verify_email"); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("Latest for an address with no mail: got code %v, want NOT_FOUND", apperr.CodeOf(err))
	}
}

func TestOutboxRefusesInvalidMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := mail.NewOutbox(dbtest.New(t))
	m := testMessage()
	m.Subject = "Hi\r\nBcc: victim@example.com"
	if err := o.Send(ctx, m); !errors.Is(err, mail.ErrInvalidMessage) {
		t.Errorf("got %v, want ErrInvalidMessage", err)
	}
	if got, err := o.List(ctx, 10); err != nil || len(got) != 0 {
		t.Errorf("List: got %d messages (%v), want 0", len(got), err)
	}
}

func TestOutboxList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := mail.NewOutbox(dbtest.New(t))
	subjects := []string{"one", "two", "three", "four"}
	for _, s := range subjects {
		m := testMessage()
		m.Subject = s
		if err := o.Send(ctx, m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}

	for _, tc := range []struct {
		limit int
		want  []string
	}{
		{limit: 2, want: []string{"four", "three"}},
		{limit: 10, want: []string{"four", "three", "two", "one"}},
		{limit: 0, want: []string{"four", "three", "two", "one"}},
	} {
		t.Run(strings.Join(tc.want, ","), func(t *testing.T) {
			msgs, err := o.List(ctx, tc.limit)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var got []string
			for _, m := range msgs {
				got = append(got, m.Subject)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("List(%d): got %v, want %v", tc.limit, got, tc.want)
			}
		})
	}
}

func TestOutboxListTo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := mail.NewOutbox(dbtest.New(t))
	for i, to := range []string{"a@example.com", "b@example.com", "a@example.com", "A@example.com", "a@example.com"} {
		m := testMessage()
		m.To, m.Subject = to, fmt.Sprint(i)
		if err := o.Send(ctx, m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	for _, tc := range []struct {
		to    string
		limit int
		want  string
	}{
		{"a@example.com", 0, "4,2,0"}, // newest first, the address exactly
		{"a@example.com", 2, "4,2"},
		{"b@example.com", 10, "1"},
		{"c@example.com", 10, ""},
	} {
		msgs, err := o.ListTo(ctx, tc.to, tc.limit)
		if err != nil {
			t.Fatalf("ListTo: %v", err)
		}
		var got []string
		for _, m := range msgs {
			if m.To != tc.to {
				t.Errorf("ListTo(%s) listed mail to %s", tc.to, m.To)
			}
			got = append(got, m.Subject)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("ListTo(%s, %d): got %v, want %s", tc.to, tc.limit, got, tc.want)
		}
	}
}
