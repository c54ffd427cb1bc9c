package app

import (
	"github.com/fastimage/api/internal/config"
	"github.com/fastimage/api/internal/generate/provider"
	"github.com/fastimage/api/internal/generate/provider/local"
	"github.com/fastimage/api/internal/generate/provider/openai"
)

// newProvider returns the configured AI provider: the built-in generator by
// default, whose edits decode no image costlier than maxDecodeBytes, or an
// OpenAI-compatible Images API.
func newProvider(cfg config.Generate, maxDecodeBytes int64) (provider.Provider, error) {
	if cfg.Provider != "openai" {
		return local.New(local.Config{StepDelay: cfg.LocalStepDelay, MaxDecodeBytes: maxDecodeBytes}), nil
	}
	c, err := openai.New(openai.Config{
		BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIKey, Model: cfg.OpenAIModel,
		Timeout: cfg.OpenAITimeout, PartialImages: cfg.OpenAIPartials,
	})
	if err != nil {
		return nil, &config.Error{Problems: []string{"OpenAI settings: " + err.Error()}}
	}
	return c, nil
}
