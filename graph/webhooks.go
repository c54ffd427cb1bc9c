package graph

import (
	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/webhook"
)

// secretPayload shows an endpoint with its secret, the one time it is shown.
func secretPayload(ep *webhook.Endpoint, err error) (*model.WebhookSecretPayload, error) {
	if err != nil {
		return nil, err
	}
	secret := ep.Secret
	ep.Secret = ""
	return &model.WebhookSecretPayload{Endpoint: ep, Secret: secret}, nil
}
