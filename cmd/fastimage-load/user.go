package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"time"
)

// The operations, in the order a virtual user does them and the report
// lists them.
const (
	opSignUp    = "signUp"
	opOutbox    = "readOutbox"
	opVerify    = "verifyEmail"
	opSignIn    = "signIn"
	opConnect   = "openSocket"
	opEstimate  = "estimate"
	opList      = "listWorks"
	opGenerate  = "generateImage"
	opFollow    = "followEvents"
	opDownload  = "download"
	opGallery   = "viewImage" // a download of an earlier image, once credits ran out
	outboxWait  = 15 * time.Second
	outboxRetry = 100 * time.Millisecond
)

var flowOps = []string{opSignUp, opOutbox, opVerify, opSignIn, opConnect, opEstimate, opList, opGenerate, opFollow, opDownload, opGallery}

const (
	signUpMutation = `mutation SignUp($input: SignUpInput!) { signUp(input: $input) { message } }`
	verifyMutation = `mutation Verify($input: VerifyEmailInput!) { verifyEmail(input: $input) { user { id } } }`
	signInMutation = `mutation SignIn($input: SignInInput!) { signIn(input: $input) { token } }`
	estimateQuery  = `query Estimate($input: GenerateImageInput!) { estimateGeneration(input: $input) { totalCredits } }`
	worksQuery     = `query MyWorks {
  viewer {
    credits { available }
    works(first: 20) { edges { node { id status images { url } } } }
  }
}`
	cancelMutation   = `mutation Cancel($input: CancelGenerationInput!) { cancelGeneration(input: $input) { generation { id } } }`
	generateMutation = `mutation Generate($input: GenerateImageInput!) {
  generateImage(input: $input) { generation { id } }
}`
)

// prompts gives the virtual users something to ask for.
var prompts = []string{
	"a lighthouse on a cliff at dusk", "two boats in a calm harbour", "a fox in fresh snow",
	"a city street after rain, neon signs", "a bowl of oranges on a blue table", "mountains above a sea of clouds",
}

// user is one virtual editor user.
type user struct {
	n     int
	run   *runner
	c     *client
	sock  *socket
	email string
	pw    string
	price int // credits one generation costs
}

// timed runs one operation, recording its latency or its failure. An
// operation that the end of the run cut short counts as interrupted.
func (u *user) timed(ctx context.Context, name string, f func(ctx context.Context) error) error {
	start := time.Now()
	err := f(ctx)
	switch {
	case err == nil:
		u.run.rec.ok(name, time.Since(start))
	case ctx.Err() != nil:
		u.run.rec.interrupted(name)
	default:
		u.run.rec.fail(name, codeOf(err))
		u.run.logFirst(name, err)
	}
	return err
}

// live runs the user: sign up, verify and sign in, then iterations until
// the run stops it. ctx ends at the hard stop (the run's end plus grace).
func (u *user) live(ctx context.Context) {
	defer func() {
		if u.sock != nil {
			u.sock.close()
		}
		u.c.close()
	}()
	if err := u.join(ctx); err != nil {
		return
	}
	for i := 0; !u.run.stopping() && (u.run.opt.iterations == 0 || i < u.run.opt.iterations); i++ {
		u.iterate(ctx)
		u.run.rec.iteration()
		if u.run.opt.iterations != 0 && i+1 == u.run.opt.iterations {
			break
		}
		u.think()
	}
}

// join signs up through the emailed link, signs in and opens the socket.
// Password hashing is the server's most expensive step: a user holds one of
// the run's auth slots from sign-up to sign-in, so that users join one
// after another rather than all sign up and then queue to sign in.
func (u *user) join(ctx context.Context) error {
	var secret [12]byte
	_, _ = crand.Read(secret[:])
	u.pw = "load-" + hex.EncodeToString(secret[:])
	u.email = fmt.Sprintf("load-%s-%d@example.com", u.run.id, u.n)
	if err := u.withAuthSlot(ctx, func() error { return u.signUpAndIn(ctx) }); err != nil {
		return err
	}
	if err := u.connect(ctx); err != nil {
		return err
	}
	err := u.timed(ctx, opEstimate, func(ctx context.Context) error {
		var out struct{ EstimateGeneration struct{ TotalCredits int } }
		if err := u.c.graphql(ctx, estimateQuery, map[string]any{"input": u.generateInput("")}, &out); err != nil {
			return err
		}
		u.price = out.EstimateGeneration.TotalCredits
		return nil
	})
	if err == nil {
		u.run.joined.Add(1)
	}
	return err
}

// signUpAndIn signs up, verifies through the outbox and signs in.
func (u *user) signUpAndIn(ctx context.Context) error {
	if err := u.timed(ctx, opSignUp, func(ctx context.Context) error {
		return u.c.graphql(ctx, signUpMutation, map[string]any{"input": map[string]any{"email": u.email, "name": fmt.Sprintf("Load %d", u.n), "password": u.pw}}, nil)
	}); err != nil {
		return err
	}
	var token string
	if err := u.timed(ctx, opOutbox, func(ctx context.Context) (err error) {
		token, err = u.verifyToken(ctx)
		return err
	}); err != nil {
		return err
	}
	if err := u.timed(ctx, opVerify, func(ctx context.Context) error {
		return u.c.graphql(ctx, verifyMutation, map[string]any{"input": map[string]any{"token": token}}, nil)
	}); err != nil {
		return err
	}
	return u.timed(ctx, opSignIn, func(ctx context.Context) error {
		var out struct{ SignIn struct{ Token string } }
		if err := u.c.graphql(ctx, signInMutation, map[string]any{"input": map[string]any{"email": u.email, "password": u.pw}}, &out); err != nil {
			return err
		}
		u.c.token = out.SignIn.Token
		return nil
	})
}

// errStopped ends a user that the end of the run caught still waiting to
// sign up or in; it is not counted.
var errStopped = errors.New("the run ended before this user joined")

func (u *user) withAuthSlot(ctx context.Context, f func() error) error {
	select {
	case u.run.authSlots <- struct{}{}:
	case <-u.run.stop:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-u.run.authSlots }()
	return f()
}

var verifyLink = regexp.MustCompile(`/verify-email\?token=([^\s"<>]+)`)

// verifyToken reads the verification link from the development outbox. The
// mail is stored in the sign-up's own transaction, so it is there at once;
// the short wait only covers a busy database.
func (u *user) verifyToken(ctx context.Context) (string, error) {
	path := "/dev/outbox.json?limit=5&to=" + url.QueryEscape(u.email)
	deadline := time.Now().Add(outboxWait)
	for {
		var box struct {
			Messages []struct{ Kind, Text string }
		}
		if err := u.c.getJSON(ctx, path, &box); err != nil {
			return "", err
		}
		for _, m := range box.Messages {
			if m.Kind != "verify_email" {
				continue
			}
			if match := verifyLink.FindStringSubmatch(m.Text); match != nil {
				return url.QueryUnescape(match[1])
			}
		}
		if time.Now().After(deadline) {
			return "", &opError{code: "no verification mail", msg: "nothing in the outbox for " + u.email}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(outboxRetry):
		}
	}
}

func (u *user) connect(ctx context.Context) error {
	return u.timed(ctx, opConnect, func(ctx context.Context) error {
		s, err := dialSocket(ctx, u.c.base, u.c.token, u.run.dialer(u.n))
		if err != nil {
			return err
		}
		u.sock = s
		return nil
	})
}

func (u *user) generateInput(key string) map[string]any {
	in := map[string]any{"prompt": prompts[u.n%len(prompts)], "width": u.run.opt.size, "height": u.run.opt.size}
	if key != "" {
		in["idempotencyKey"] = key
	}
	return in
}

// iterate is one round of an editor user's work: look at My Works, then
// make an image, watch it being made and download it; or, once the
// sign-up credits are spent, open an earlier image instead.
func (u *user) iterate(ctx context.Context) {
	if u.sock != nil && u.sock.broken() != nil {
		u.sock.close()
		u.sock = nil
	}
	if u.sock == nil {
		if u.connect(ctx) != nil {
			return
		}
	}
	var works struct {
		Viewer struct {
			Credits struct{ Available int }
			Works   struct {
				Edges []struct {
					Node struct {
						Status string
						Images []struct{ URL string }
					}
				}
			}
		}
	}
	if u.timed(ctx, opList, func(ctx context.Context) error { return u.c.graphql(ctx, worksQuery, nil, &works) }) != nil {
		return
	}
	if works.Viewer.Credits.Available < u.price {
		for _, e := range works.Viewer.Works.Edges {
			if e.Node.Status == "SUCCEEDED" && len(e.Node.Images) > 0 {
				image := e.Node.Images[rand.IntN(len(e.Node.Images))].URL
				_ = u.timed(ctx, opGallery, func(ctx context.Context) error { _, err := u.c.download(ctx, image); return err })
				return
			}
		}
		return
	}
	var id string
	var key [8]byte
	_, _ = crand.Read(key[:])
	if u.timed(ctx, opGenerate, func(ctx context.Context) error {
		var out struct {
			GenerateImage struct{ Generation struct{ ID string } }
		}
		if err := u.c.graphql(ctx, generateMutation, map[string]any{"input": u.generateInput(hex.EncodeToString(key[:]))}, &out); err != nil {
			return err
		}
		id = out.GenerateImage.Generation.ID
		return nil
	}) != nil {
		return
	}
	var output string
	if err := u.timed(ctx, opFollow, func(ctx context.Context) (err error) {
		output, err = u.sock.follow(ctx, id)
		return err
	}); err != nil {
		if ctx.Err() != nil {
			u.cancel(id)
		}
		return
	}
	_ = u.timed(ctx, opDownload, func(ctx context.Context) error { _, err := u.c.download(ctx, output); return err })
}

// cancel stops a generation the end of the run left unfinished, so that
// the server does not go on making images nobody waits for. It is not
// measured: the run is over.
func (u *user) cancel(id string) {
	ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	_ = u.c.graphql(ctx, cancelMutation, map[string]any{"input": map[string]any{"generationId": id}}, nil)
}

// think pauses as a person looking at the result would: the -think time,
// from half to one and a half times it, cut short when the run stops.
func (u *user) think() {
	d := u.run.opt.think
	if d <= 0 {
		return
	}
	d = d/2 + time.Duration(rand.Int64N(int64(d)+1))
	select {
	case <-time.After(d):
	case <-u.run.stop:
	}
}
