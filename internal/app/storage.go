package app

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/fastimage/api/internal/clock"
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/storage"
	"github.com/fastimage/api/internal/storage/gcs"
	"github.com/fastimage/api/internal/storage/local"
)

// newBucket opens the configured storage backend.
// A local bucket tells the time by clk; GCS by its own clock.
func newBucket(ctx context.Context, cfg *config.Serve, log *slog.Logger, clk clock.Clock) (storage.Bucket, error) {
	switch cfg.Storage.Backend {
	case "gcs":
		b, err := newGCSBucket(ctx, cfg.Storage)
		if err != nil {
			return nil, err
		}
		return b, nil
	default:
		key, err := localSigningKey(cfg)
		if err != nil {
			return nil, err
		}
		b, err := local.New(local.Config{
			Dir:         cfg.Storage.Dir,
			SigningKey:  key,
			BaseURL:     strings.TrimRight(cfg.PublicURL.String(), "/") + "/blobs",
			MaxPutBytes: cfg.MaxUploadBytes,
			Log:         log,
			Clock:       clk,
		})
		if err != nil {
			return nil, fmt.Errorf("local storage in %s: %w", cfg.Storage.Dir, err)
		}
		return b, nil
	}
}

// localSigningKey is STORAGE_SIGNING_KEY, or in development a key kept in
// the storage folder, so that URLs survive restarts and replicas sharing the
// folder agree.
func localSigningKey(cfg *config.Serve) ([]byte, error) {
	if cfg.Storage.SigningKey != "" {
		return []byte(cfg.Storage.SigningKey), nil
	}
	path := filepath.Join(cfg.Storage.Dir, "signing-key")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(cfg.Storage.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", cfg.Storage.Dir, err)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	key := []byte(hex.EncodeToString(raw[:]))
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return key, nil
}

// exportLinkKey is the key that signs data export download links:
// PRIVACY_EXPORT_LINK_KEY, else one derived from the local storage signing
// key (configured, or kept in the storage folder when the configured local
// bucket is in use), so that links survive restarts and replicas agree.
// Without either (GCS in development, or a test's own bucket) it is nil:
// the privacy service then picks a random key for this process.
func exportLinkKey(cfg *config.Serve, configuredBucket bool) ([]byte, error) {
	if cfg.Exports.LinkKey != "" {
		return []byte(cfg.Exports.LinkKey), nil
	}
	var base []byte
	switch {
	case cfg.Storage.SigningKey != "":
		base = []byte(cfg.Storage.SigningKey)
	case configuredBucket && cfg.Storage.Backend != "gcs":
		var err error
		if base, err = localSigningKey(cfg); err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	// A key of its own, so that a storage URL's signature can never pass
	// for a download token or the other way round.
	m := hmac.New(sha256.New, base)
	m.Write([]byte("fastimage privacy export links"))
	return m.Sum(nil), nil
}

func newGCSBucket(ctx context.Context, s config.Storage) (*gcs.Bucket, error) {
	b, err := gcs.New(ctx, gcs.Config{Bucket: s.GCSBucket, SigningKeyFile: s.GCSCredentialsFile, SignerEmail: s.GCSSignerEmail})
	if err != nil {
		return nil, fmt.Errorf("GCS bucket %s: %w", s.GCSBucket, err)
	}
	return b, nil
}
