package gcs

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	cloudstorage "cloud.google.com/go/storage"

	"github.com/fastimage/api/internal/storage"
)

// MaxSignedURLLifetime is the longest a V4 signed URL may stay valid; GCS
// refuses longer ones.
const MaxSignedURLLifetime = 7 * 24 * time.Hour

// signer holds what every signed URL of a Bucket shares.
type signer struct {
	// accessID is the signing service account's email; empty lets the SDK
	// find it in the client's credentials or the metadata server.
	accessID string
	// privateKey is a PEM RSA key; nil leaves signing to the SDK (the
	// credentials' own key, or IAM signBlob).
	privateKey []byte
	host       string
	insecure   bool
}

// newSigner reads the signing settings of cfg.
func newSigner(cfg Config) (signer, error) {
	s := signer{accessID: cfg.SignerEmail, host: cfg.SignedURLHost}
	switch cfg.SignedURLScheme {
	case "", "https":
	case "http":
		s.insecure = true
	default:
		return signer{}, fmt.Errorf("gcs: config: signed URL scheme %q is neither https nor http", cfg.SignedURLScheme)
	}

	keyJSON := cfg.SigningKeyJSON
	if len(keyJSON) == 0 && cfg.SigningKeyFile != "" {
		var err error
		keyJSON, err = os.ReadFile(cfg.SigningKeyFile)
		if err != nil {
			return signer{}, fmt.Errorf("gcs: config: read signing key: %w", err)
		}
	}
	if len(keyJSON) == 0 {
		return s, nil
	}
	email, key, err := parseServiceAccountKey(keyJSON)
	if err != nil {
		return signer{}, fmt.Errorf("gcs: config: signing key: %w", err)
	}
	if s.accessID != "" && s.accessID != email {
		// A URL signed by one key but naming another account never verifies.
		return signer{}, fmt.Errorf("gcs: config: signer email %q differs from the signing key's client_email %q", s.accessID, email)
	}
	s.accessID = email
	s.privateKey = key
	return s, nil
}

// parseServiceAccountKey returns the client_email and PEM private_key of a
// service-account JSON key, after checking that the key is an RSA key the
// SDK can sign with.
func parseServiceAccountKey(data []byte) (email string, pemKey []byte, err error) {
	var sa struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal(data, &sa); err != nil {
		return "", nil, fmt.Errorf("not a JSON key: %w", err)
	}
	if sa.Type != "service_account" {
		return "", nil, fmt.Errorf("type is %q, want service_account", sa.Type)
	}
	if sa.ClientEmail == "" || sa.PrivateKey == "" {
		return "", nil, errors.New("client_email or private_key is missing")
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		return "", nil, errors.New("private_key is not PEM")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	if err != nil {
		return "", nil, fmt.Errorf("parse private_key: %w", err)
	}
	if _, ok := parsed.(*rsa.PrivateKey); !ok {
		return "", nil, fmt.Errorf("private_key is a %T, want an RSA key", parsed)
	}
	return sa.ClientEmail, []byte(sa.PrivateKey), nil
}

// SignedURL returns a V4 signed URL (GOOG4-RSA-SHA256) that lets its holder
// GET or PUT the object at key until opts.Expires, which must be in the
// future and at most MaxSignedURLLifetime away. A PUT URL needs a
// ContentType and signs it as the content-type header, so the upload must
// carry exactly that Content-Type (and is then served with it). A PUT URL
// with a Size also signs the content-length header, so GCS refuses a body
// of any other length.
//
// With a signing key in Config the URL is signed locally. Otherwise the SDK
// signs it, possibly through the IAM signBlob API; that call does not take
// ctx (the SDK uses its own context), but it is retried within the bucket's
// retry limits.
func (b *Bucket) SignedURL(ctx context.Context, key string, opts storage.SignOptions) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("gcs: signed URL: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("gcs: signed URL %q: %w", key, err)
	}
	now := time.Now()
	switch {
	case !opts.Expires.After(now):
		return "", fmt.Errorf("gcs: signed URL %q: expiry %v is not in the future", key, opts.Expires)
	case opts.Expires.Sub(now) > MaxSignedURLLifetime:
		return "", fmt.Errorf("gcs: signed URL %q: expiry %v is more than %v away", key, opts.Expires, MaxSignedURLLifetime)
	}
	so := &cloudstorage.SignedURLOptions{
		GoogleAccessID: b.signer.accessID,
		PrivateKey:     b.signer.privateKey,
		Scheme:         cloudstorage.SigningSchemeV4,
		Expires:        opts.Expires,
		Hostname:       b.signer.host,
		Insecure:       b.signer.insecure,
	}
	switch opts.Method {
	case http.MethodGet:
		so.Method = http.MethodGet
	case http.MethodPut:
		if opts.ContentType == "" {
			return "", fmt.Errorf("gcs: signed URL %q: a PUT URL needs a content type", key)
		}
		so.Method = http.MethodPut
		so.ContentType = opts.ContentType
		if opts.Size < 0 {
			return "", fmt.Errorf("gcs: signed URL %q: size %d is negative", key, opts.Size)
		}
		if opts.Size > 0 {
			so.Headers = []string{"content-length:" + strconv.FormatInt(opts.Size, 10)}
		}
	default:
		return "", fmt.Errorf("gcs: signed URL %q: method %q is neither GET nor PUT", key, opts.Method)
	}
	u, err := b.bucket.SignedURL(key, so)
	if err != nil {
		return "", fmt.Errorf("gcs: signed URL %q: %w", key, err)
	}
	return u, nil
}
