package config_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/fastimage/api/internal/config"
)

func TestCostBuckets(t *testing.T) {
	t.Setenv("COST_LIMIT_KEY_SIZE", "30000")
	t.Setenv("COST_LIMIT_ANONYMOUS_SIZE", "0")
	cfg, err := config.ParseServe([]string{"--cost-limit-session-rate", "250"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Costs{
		Keys:      config.CostBucket{Size: 30_000, RestoreRate: 500},
		Sessions:  config.CostBucket{Size: 20_000, RestoreRate: 250},
		Anonymous: config.CostBucket{Size: 0, RestoreRate: 200},
	}
	if cfg.Costs != want {
		t.Errorf("costs %+v, want %+v", cfg.Costs, want)
	}

	// A bucket smaller than the largest operation allowed would refuse
	// that operation for ever.
	_, err = config.ParseServe([]string{"--max-query-complexity", "5000", "--cost-limit-session-size", "4000", "--cost-limit-key-rate", "0"}, io.Discard)
	var settings *config.Error
	if !errors.As(err, &settings) {
		t.Fatalf("got %v, want *config.Error", err)
	}
	for _, want := range []string{"--cost-limit-session-size", "--cost-limit-key-rate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems do not name %s:\n%v", want, err)
		}
	}
}
