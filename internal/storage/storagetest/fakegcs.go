package storagetest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"testing"

	cloudstorage "cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/fastimage/api/internal/storage/gcs"
)

// FakeGCS returns a GCS bucket in a fake-gcs-server that stops when the
// test ends. Its signed URLs point at the fake, which serves them without
// checking their signature.
func FakeGCS(t testing.TB) *gcs.Bucket {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", Port: 0, PublicHost: "127.0.0.1",
	})
	if err != nil {
		t.Fatalf("starting fake-gcs-server: %v", err)
	}
	t.Cleanup(srv.Stop)
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatalf("parsing the fake's URL: %v", err)
	}
	const name = "fastimage-test"
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	client, err := cloudstorage.NewClient(t.Context(),
		option.WithEndpoint(srv.URL()+"/storage/v1/"),
		option.WithHTTPClient(&http.Client{Transport: http.DefaultTransport}),
		option.WithoutAuthentication(),
		cloudstorage.WithJSONReads(),
	)
	if err != nil {
		t.Fatalf("creating the GCS client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	b, err := gcs.New(t.Context(), gcs.Config{
		Bucket: name, Client: client, SigningKeyJSON: serviceAccountKey(t),
		SignedURLHost: u.Host, SignedURLScheme: "http",
	})
	if err != nil {
		t.Fatalf("gcs bucket: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// serviceAccountKey is a throwaway service-account JSON key to sign URLs
// with.
func serviceAccountKey(t testing.TB) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generating an RSA key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshalling the key: %v", err)
	}
	j, err := json.Marshal(map[string]string{
		"type":         "service_account",
		"client_email": "signer@fastimage-test.iam.gserviceaccount.com",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	if err != nil {
		t.Fatalf("marshalling the JSON key: %v", err)
	}
	return j
}
