package graph

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fastimage/api/graph/fanout"
	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/account"
	"github.com/fastimage/api/internal/generate"
)

// Bounds of the shared event models: how many are held, and for how long
// subscribers woken by one commit may take the one made for the first of
// them. Short, so that a replay later still gets freshly signed URLs.
const (
	sharedEventModels   = 4096
	sharedEventModelTTL = 5 * time.Second
)

// eventKey names one generation event as delivered: whether the generation
// had ended changes it (previews are gone then).
type eventKey struct {
	gen   uuid.UUID
	seq   int
	ended bool
}

type madeEvent struct {
	m   *model.GenerationEvent
	err error
}

func newEventModels() *fanout.Recent[eventKey, madeEvent] {
	return fanout.NewRecent[eventKey, madeEvent](sharedEventModels, sharedEventModelTTL)
}

// sharedEventModel is eventModel made once for all the subscribers of this
// process that take one event at about the same time: they then hold the
// same value, which lets fanout execute the event once for all of them.
func (r *Resolver) sharedEventModel(ctx context.Context, e generate.Event) (*model.GenerationEvent, error) {
	got, _ := r.eventModels.Do(eventKey{gen: e.GenerationID, seq: e.Seq, ended: e.GenerationEnded}, func() (madeEvent, bool) {
		// Made for every subscriber waiting: not on the context of the
		// first, which may go away.
		m, err := r.eventModel(context.WithoutCancel(ctx), e)
		return madeEvent{m: m, err: err}, err == nil
	})
	return got.m, got.err
}

// AuthClass is the authorization class of the caller for fanout: a user
// with a role, a verified flag and a set of scopes sees the same data as
// any other caller with the same. Callers not signed in share nothing.
func AuthClass(ctx context.Context) string {
	a, err := account.Actor(ctx)
	if err != nil {
		return ""
	}
	scopes := make([]string, len(a.Scopes))
	for i, s := range a.Scopes {
		scopes[i] = string(s)
	}
	slices.Sort(scopes)
	key := "session"
	if a.IsKey() {
		key = "key:" + strings.Join(scopes, ",")
	}
	return a.UserID.String() + "|" + string(a.Role) + "|" + strconv.FormatBool(a.Verified) + "|" + key
}
