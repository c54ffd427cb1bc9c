package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/logging"
)

func TestEveryLineOfARequestCarriesItsID(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, config.Log{Level: slog.LevelInfo, Format: "auto"}).With("component", "test")
	ctx := logging.WithRequestID(context.Background(), "abc123")
	log.InfoContext(ctx, "first")
	log.WithGroup("g").InfoContext(ctx, "second", "k", "v")
	log.Info("outside a request")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (JSON when not a terminal)", len(lines))
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("line %d is not JSON: %s", i, line)
		}
		_, has := rec["request_id"]
		if g, ok := rec["g"].(map[string]any); ok {
			_, has = g["request_id"]
		}
		if want := i < 2; has != want {
			t.Errorf("line %d: request_id present = %v, want %v: %s", i, has, want, line)
		}
	}
}
