package gcs_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/gcs"
)

// signHost is where signed URLs point in these tests. It has no port: the
// Go client signs the host without one, and GCS's hosts have none.
const signHost = "storage.example.test"

// verifyV4 checks a V4 signed URL the way GCS does, rebuilding the string to
// sign from the URL (https://cloud.google.com/storage/docs/authentication/signatures)
// and checking its RSA-SHA256 signature with pub. header holds the values of
// the signed headers other than host, keyed by their lower-case names.
func verifyV4(raw, method string, header map[string]string, pub *rsa.PublicKey) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	q := u.Query()
	sig, err := hex.DecodeString(q.Get("X-Goog-Signature"))
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("signature %q is not hex", q.Get("X-Goog-Signature"))
	}
	q.Del("X-Goog-Signature")

	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	})
	escape := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var query []string
	for _, k := range keys {
		for _, v := range q[k] {
			query = append(query, escape(k)+"="+escape(v))
		}
	}

	signed := q.Get("X-Goog-SignedHeaders")
	var headers strings.Builder
	for _, name := range strings.Split(signed, ";") {
		value, ok := header[name]
		if name == "host" {
			value, ok = u.Host, true
		}
		if !ok {
			return fmt.Errorf("signed header %q has no value", name)
		}
		fmt.Fprintf(&headers, "%s:%s\n", name, value)
	}

	canonical := strings.Join([]string{method, u.EscapedPath(), strings.Join(query, "&"), headers.String(), signed, "UNSIGNED-PAYLOAD"}, "\n")
	digest := sha256.Sum256([]byte(canonical))
	cred := q.Get("X-Goog-Credential")
	scope := cred[strings.Index(cred, "/")+1:]
	toSign := strings.Join([]string{"GOOG4-RSA-SHA256", q.Get("X-Goog-Date"), scope, hex.EncodeToString(digest[:])}, "\n")
	sum := sha256.Sum256([]byte(toSign))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// checkV4 checks the shape of a V4 signed URL and its signature.
func checkV4(t *testing.T, raw, bucket, key, method, contentType string, expires time.Time, pub *rsa.PublicKey) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parsing %q: %v", raw, err)
	}
	if u.Scheme != "https" || u.Host != signHost || u.Path != "/"+bucket+"/"+key {
		t.Errorf("URL: got %s://%s%s, want https://%s/%s/%s", u.Scheme, u.Host, u.Path, signHost, bucket, key)
	}
	q := u.Query()
	if got := q.Get("X-Goog-Algorithm"); got != "GOOG4-RSA-SHA256" {
		t.Errorf("X-Goog-Algorithm: got %v, want %v", got, "GOOG4-RSA-SHA256")
	}
	date, err := time.Parse("20060102T150405Z", q.Get("X-Goog-Date"))
	if err != nil {
		t.Fatalf("X-Goog-Date: %v", err)
	}
	if want := testEmail + "/" + date.Format("20060102") + "/auto/storage/goog4_request"; q.Get("X-Goog-Credential") != want {
		t.Errorf("X-Goog-Credential: got %v, want %v", q.Get("X-Goog-Credential"), want)
	}
	secs, err := strconv.Atoi(q.Get("X-Goog-Expires"))
	if err != nil {
		t.Fatalf("X-Goog-Expires: %v", err)
	}
	// X-Goog-Date and X-Goog-Expires are both whole seconds, truncated.
	if end := date.Add(time.Duration(secs) * time.Second); end.After(expires) || expires.Sub(end) > 2*time.Second {
		t.Errorf("X-Goog-Date + X-Goog-Expires: got %v, want %v (to the second)", end, expires)
	}
	wantSigned := "host"
	header := map[string]string{}
	if contentType != "" {
		wantSigned = "content-type;host"
		header["content-type"] = contentType
	}
	if got := q.Get("X-Goog-SignedHeaders"); got != wantSigned {
		t.Errorf("X-Goog-SignedHeaders: got %v, want %v", got, wantSigned)
	}
	if err := verifyV4(raw, method, header, pub); err != nil {
		t.Errorf("signature: got %v, want a valid one", err)
	}
}

func TestSignedURL(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, e.client(t, nil))
	cfg.SignedURLHost, cfg.SignedURLScheme = signHost, ""
	b := e.bucket(t, cfg)
	expires := time.Now().Add(15 * time.Minute)

	tests := []struct {
		name, key, method, contentType string
	}{
		{"GET", "users/u/works/w/out.png", http.MethodGet, ""},
		{"PUT", "users/u/uploads/in.png", http.MethodPut, "image/png"},
		{"key that needs escaping", "users/u/a b#1+€.png", http.MethodGet, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := b.SignedURL(t.Context(), tt.key, storage.SignOptions{Method: tt.method, Expires: expires, ContentType: tt.contentType})
			if err != nil {
				t.Fatalf("SignedURL: %v", err)
			}
			checkV4(t, u, cfg.Bucket, tt.key, tt.method, tt.contentType, expires, &e.key.PublicKey)
		})
	}

	// The verifier must refuse what GCS refuses, or the checks above prove
	// nothing.
	u, err := b.SignedURL(t.Context(), "users/u/uploads/in.png", storage.SignOptions{Method: http.MethodPut, Expires: expires, ContentType: "image/png"})
	if err != nil {
		t.Fatalf("SignedURL: %v", err)
	}
	other, _ := newServiceAccountKey(t, testEmail)
	refused := []struct {
		name, url, method string
		header            map[string]string
		pub               *rsa.PublicKey
	}{
		{"another method", u, http.MethodGet, map[string]string{"content-type": "image/png"}, &e.key.PublicKey},
		{"another content type", u, http.MethodPut, map[string]string{"content-type": "text/html"}, &e.key.PublicKey},
		{"another key", strings.Replace(u, "in.png", "evil.png", 1), http.MethodPut, map[string]string{"content-type": "image/png"}, &e.key.PublicKey},
		{"longer lifetime", withQuery(t, u, "X-Goog-Expires", "604800"), http.MethodPut, map[string]string{"content-type": "image/png"}, &e.key.PublicKey},
		{"another signer", u, http.MethodPut, map[string]string{"content-type": "image/png"}, &other.PublicKey},
	}
	for _, tt := range refused {
		t.Run("verifier refuses "+tt.name, func(t *testing.T) {
			if err := verifyV4(tt.url, tt.method, tt.header, tt.pub); err == nil {
				t.Errorf("verifyV4: got nil error, want a bad signature")
			}
		})
	}
}

// A PUT URL signed with a size signs the content-length header: GCS
// refuses a body of another length, so a client cannot store more than it
// declared.
func TestSignedPutURLHoldsTheSize(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, e.client(t, nil))
	cfg.SignedURLHost, cfg.SignedURLScheme = signHost, ""
	b := e.bucket(t, cfg)
	u, err := b.SignedURL(t.Context(), "users/u/uploads/in.png", storage.SignOptions{
		Method: http.MethodPut, Expires: time.Now().Add(15 * time.Minute), ContentType: "image/png", Size: 1234,
	})
	if err != nil {
		t.Fatalf("SignedURL: %v", err)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if got := parsed.Query().Get("X-Goog-SignedHeaders"); !slices.Contains(strings.Split(got, ";"), "content-length") {
		t.Fatalf("signed headers: got %q, want content-length among them", got)
	}
	for _, tt := range []struct {
		length string
		ok     bool
	}{{"1234", true}, {"5242880", false}, {"1", false}} {
		err := verifyV4(u, http.MethodPut, map[string]string{"content-type": "image/png", "content-length": tt.length}, &e.key.PublicKey)
		if (err == nil) != tt.ok {
			t.Errorf("a PUT of %s bytes: verify error %v, want accepted %v", tt.length, err, tt.ok)
		}
	}
}

// withQuery returns raw with the query parameter k set to v.
func withQuery(t *testing.T, raw, k, v string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parsing %q: %v", raw, err)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// iamSigner stands in for the IAM Credentials API: it answers signBlob
// calls by signing with key, and passes every other request on.
type iamSigner struct {
	next http.RoundTripper
	key  *rsa.PrivateKey

	mu    sync.Mutex
	paths []string
}

func (s *iamSigner) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != "iamcredentials.googleapis.com" {
		return s.next.RoundTrip(req)
	}
	s.mu.Lock()
	s.paths = append(s.paths, req.URL.Path)
	s.mu.Unlock()
	var in struct {
		Payload string `json:"payload"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		return nil, err
	}
	payload, err := base64.StdEncoding.DecodeString(in.Payload)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]string{"keyId": "test", "signedBlob": base64.StdEncoding.EncodeToString(sig)})
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(string(body))),
		Request:    req,
	}, nil
}

// TestSignedURLIAM signs without a key, as under workload identity: the SDK
// asks the IAM Credentials API to sign for Config.SignerEmail.
func TestSignedURLIAM(t *testing.T) {
	e := newEnv(t)
	iam := &iamSigner{next: http.DefaultTransport, key: e.key}
	cfg := e.config(t, e.client(t, iam))
	cfg.SigningKeyJSON = nil
	cfg.SignerEmail = testEmail
	cfg.SignedURLHost, cfg.SignedURLScheme = signHost, "https"
	b := e.bucket(t, cfg)

	expires := time.Now().Add(time.Hour)
	u, err := b.SignedURL(t.Context(), "users/u/in.png", storage.SignOptions{Method: http.MethodPut, Expires: expires, ContentType: "image/png"})
	if err != nil {
		t.Fatalf("SignedURL: %v", err)
	}
	checkV4(t, u, cfg.Bucket, "users/u/in.png", http.MethodPut, "image/png", expires, &e.key.PublicKey)
	want := []string{"/v1/projects/-/serviceAccounts/" + testEmail + ":signBlob"}
	if !slices.Equal(iam.paths, want) {
		t.Errorf("signBlob calls: got %q, want %q", iam.paths, want)
	}
}

func TestSignedURLRefuses(t *testing.T) {
	e := newEnv(t)
	b := e.bucket(t, e.config(t, e.client(t, nil)))
	hour := time.Now().Add(time.Hour)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name string
		ctx  context.Context
		key  string
		opts storage.SignOptions
	}{
		{"DELETE", t.Context(), "k", storage.SignOptions{Method: http.MethodDelete, Expires: hour}},
		{"lower-case get", t.Context(), "k", storage.SignOptions{Method: "get", Expires: hour}},
		{"past expiry", t.Context(), "k", storage.SignOptions{Method: http.MethodGet, Expires: time.Now().Add(-time.Second)}},
		{"zero expiry", t.Context(), "k", storage.SignOptions{Method: http.MethodGet}},
		{"beyond 7 days", t.Context(), "k", storage.SignOptions{Method: http.MethodGet, Expires: time.Now().Add(gcs.MaxSignedURLLifetime + time.Minute)}},
		{"PUT without content type", t.Context(), "k", storage.SignOptions{Method: http.MethodPut, Expires: hour}},
		{"invalid key", t.Context(), "a/../b", storage.SignOptions{Method: http.MethodGet, Expires: hour}},
		{"canceled context", canceled, "k", storage.SignOptions{Method: http.MethodGet, Expires: hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if u, err := b.SignedURL(tt.ctx, tt.key, tt.opts); err == nil {
				t.Errorf("SignedURL: got %v, want an error", u)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	e := newEnv(t)
	client := e.client(t, nil)
	keyFile := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(keyFile, e.keyJSON, 0o600); err != nil {
		t.Fatalf("writing the key file: %v", err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating an EC key: %v", err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatalf("marshalling the EC key: %v", err)
	}
	keyJSON := func(typ, email, key string) []byte {
		j, _ := json.Marshal(map[string]string{"type": typ, "client_email": email, "private_key": key})
		return j
	}
	var sa struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(e.keyJSON, &sa); err != nil {
		t.Fatalf("reading the test key: %v", err)
	}

	tests := []struct {
		name   string
		cfg    gcs.Config
		wantOK bool
	}{
		{"key contents", gcs.Config{Bucket: "b", Client: client, SigningKeyJSON: e.keyJSON}, true},
		{"key file", gcs.Config{Bucket: "b", Client: client, SigningKeyFile: keyFile, SignerEmail: testEmail}, true},
		{"IAM signer", gcs.Config{Bucket: "b", Client: client, SignerEmail: testEmail}, true},
		{"no signing settings", gcs.Config{Bucket: "b", Client: client}, true},
		{"http signed URLs", gcs.Config{Bucket: "b", Client: client, SignedURLScheme: "http"}, true},
		{"no bucket", gcs.Config{Client: client}, false},
		{"ftp signed URLs", gcs.Config{Bucket: "b", Client: client, SignedURLScheme: "ftp"}, false},
		{"negative chunk size", gcs.Config{Bucket: "b", Client: client, ChunkSize: -1}, false},
		{"missing key file", gcs.Config{Bucket: "b", Client: client, SigningKeyFile: filepath.Join(t.TempDir(), "none.json")}, false},
		{"key not JSON", gcs.Config{Bucket: "b", Client: client, SigningKeyJSON: []byte("-----BEGIN PRIVATE KEY-----")}, false},
		{"user credentials", gcs.Config{Bucket: "b", Client: client, SigningKeyJSON: keyJSON("authorized_user", testEmail, sa.PrivateKey)}, false},
		{"no email", gcs.Config{Bucket: "b", Client: client, SigningKeyJSON: keyJSON("service_account", "", sa.PrivateKey)}, false},
		{"key not PEM", gcs.Config{Bucket: "b", Client: client, SigningKeyJSON: keyJSON("service_account", testEmail, "not a key")}, false},
		{"EC key", gcs.Config{Bucket: "b", Client: client, SigningKeyJSON: keyJSON("service_account", testEmail, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})))}, false},
		{"email differs from key", gcs.Config{Bucket: "b", Client: client, SigningKeyJSON: e.keyJSON, SignerEmail: "other@example.iam.gserviceaccount.com"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := gcs.New(t.Context(), tt.cfg)
			if (err == nil) != tt.wantOK {
				t.Fatalf("New: got error %v, want success %v", err, tt.wantOK)
			}
			if b != nil {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
}

// TestNewOwnClient lets New create its client, pointed at the fake through
// STORAGE_EMULATOR_HOST (which the SDK reads itself), and checks that the
// Bucket works and Close releases the client.
func TestNewOwnClient(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t, nil)
	t.Setenv("STORAGE_EMULATOR_HOST", e.host)
	b, err := gcs.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mustPut(t, b, "users/u/x.txt", "hello")
	if got := mustRead(t, b, "users/u/x.txt"); got != "hello" {
		t.Errorf("Open: got %q, want %q", got, "hello")
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
