package app

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/fastimage/api/internal/config"
)

// Export links are signed by PRIVACY_EXPORT_LINK_KEY, else by a key derived
// from the local storage key (never that key itself), and stay the same
// across restarts; with GCS and no key, the service picks its own.
func TestExportLinkKey(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Serve{Storage: config.Storage{Backend: "local", Dir: dir}}

	fromFolder, err := exportLinkKey(cfg, true)
	if err != nil || len(fromFolder) != 32 {
		t.Fatalf("derived from the folder's key: %x, %v", fromFolder, err)
	}
	stored, err := os.ReadFile(filepath.Join(dir, "signing-key"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(fromFolder, stored) {
		t.Error("the link key is the storage signing key")
	}
	again, _ := exportLinkKey(cfg, true)
	if !bytes.Equal(again, fromFolder) {
		t.Error("the derived key changed between two starts")
	}

	cfg.Storage.SigningKey = "storage-signing-key-0123456789abcdef"
	fromSetting, _ := exportLinkKey(cfg, true)
	if bytes.Equal(fromSetting, fromFolder) || bytes.Equal(fromSetting, []byte(cfg.Storage.SigningKey)) {
		t.Error("STORAGE_SIGNING_KEY: the link key is not derived from it")
	}

	cfg.Exports.LinkKey = "export-link-key-0123456789abcdefghij"
	if k, _ := exportLinkKey(cfg, true); string(k) != cfg.Exports.LinkKey {
		t.Errorf("PRIVACY_EXPORT_LINK_KEY is not used as it is: %q", k)
	}

	gcs := &config.Serve{Storage: config.Storage{Backend: "gcs", GCSBucket: "b"}}
	if k, err := exportLinkKey(gcs, true); k != nil || err != nil {
		t.Errorf("GCS without a key: %x, %v; want none (the service picks one)", k, err)
	}
}
