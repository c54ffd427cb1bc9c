package graph

import (
	"github.com/fastimage/api/graph/model"
	"github.com/fastimage/api/internal/apikey"
	"github.com/fastimage/api/internal/credit"
	"github.com/fastimage/api/internal/privacy"
	"github.com/fastimage/api/internal/webhook"
	"github.com/fastimage/api/internal/work"
)

// Costs of the work behind fields, in the unit of gqlgen's estimate: a field
// read from memory costs 1 (plus its selections).
const (
	// queryCost is a field that runs SQL of its own each time it appears.
	queryCost = 10
	// hashCost is one argon2id hash: ~19 MiB held and tens of milliseconds
	// of a CPU.
	hashCost = 2000
	// imageCost is checking, stripping and thumbnailing an uploaded image.
	imageCost = 1000
	// generationCost is holding credits and queueing a generation.
	generationCost = 100
	// imagesPerWork is how many images a work is expected to have: up to
	// four outputs, its source and mask, and previews while it runs.
	imagesPerWork = 6
	// sessionsPerUser is how many live sessions a user is expected to have.
	sessionsPerUser = 20
	// binBatch is how many works emptyBin erases per call.
	binBatch = 100
	// stripeCost is a call to Stripe's API: hundreds of milliseconds, and
	// requests Stripe counts against our own rate limit.
	stripeCost = 200
	// catalogItems bounds the catalog's length, for the plans list.
	catalogItems = 20
	// auditSteps is how many steps a privacy request's trail is expected
	// to have.
	auditSteps = 8
	// legalKinds is how many kinds of legal documents there are, and
	// legalVersions how many versions are listed at once: each kind's
	// version in effect and one announced.
	legalKinds    = 2
	legalVersions = 2 * legalKinds
	// processorRoles bounds serverInfo.processors: one per role.
	processorRoles = 7
	// captchaCost is a call to the CAPTCHA provider.
	captchaCost = 200
)

// SetCosts sets the complexity of every field whose work is not one field's
// worth: connections and lists cost their page size times their selection,
// fields that run their own SQL cost a query, and mutations that hash a
// password, decode an image or queue a generation cost what those cost. A
// test walks the schema and fails for a connection or list of objects left
// at gqlgen's default (1 plus its selection, whatever its size).
func SetCosts(c *ComplexityRoot) {
	c.Query.Node = func(child int, _ string) int { return queryCost + child }
	c.Query.Nodes = func(child int, ids []string) int { return queryCost + len(ids)*child }
	c.Query.Work = func(child int, _ string) int { return queryCost + child }
	c.Query.Generation = func(child int, _ string) int { return queryCost + child }
	c.Query.EstimateGeneration = func(child int, _ model.GenerateImageInput) int { return queryCost + child }
	c.Query.EstimateEdit = func(child int, _ model.EditImageInput) int { return queryCost + child }

	// A connection runs two queries (the page and its total) and returns
	// up to `first` edges.
	c.User.Works = func(child int, first *int, _ *string, _ *model.WorkFilter) int { return page(first, child) }
	c.User.Generations = func(child int, first *int, _ *string, _ *work.Status) int { return page(first, child) }
	c.User.CreditEntries = func(child int, first *int, _ *string) int { return page(first, child) }
	c.User.CreditHolds = func(child int, first *int, _ *string, _ *credit.HoldStatus) int { return page(first, child) }
	c.User.SecurityEvents = func(child int, first *int, _ *string) int { return page(first, child) }
	c.User.Sessions = func(child int) int { return queryCost + sessionsPerUser*child }
	c.User.APIKeys = func(child int) int { return queryCost + apikey.MaxKeysPerUser*child }
	c.User.Credits = func(child int) int { return queryCost + child }
	c.User.Storage = func(child int) int { return queryCost + child }
	c.User.Purchases = func(child int, first *int, _ *string) int { return page(first, child) }
	c.User.Subscription = func(child int) int { return queryCost + child }
	c.User.StripeCustomerID = func(int) int { return queryCost }
	c.Query.Plans = func(child int) int { return 1 + catalogItems*child }
	c.User.PrivacyRequests = func(child int, first *int, _ *string) int { return page(first, child) }
	c.User.Objections = func(int) int { return queryCost }
	c.User.WebhookEndpoints = func(child int) int { return queryCost + webhook.DefaultMaxEndpoints*child }
	c.User.WebhookDeliveries = func(child int, first *int, _ *string, _ *string) int { return page(first, child) }
	c.User.WebhookRequestSecret = func(int) int { return queryCost }
	c.WebhookDelivery.AttemptLog = func(child int) int { return 1 + webhook.MaxAttemptLog*child }
	c.Query.PrivacyRequestQueue = func(child int, _ *privacy.Status, first *int, _ *string) int { return page(first, child) }
	c.PrivacyRequest.AuditTrail = func(child int) int { return queryCost + auditSteps*child }
	c.Mutation.ConfirmPassword = func(child int, _ model.ConfirmPasswordInput) int { return hashCost + child }
	c.Query.LegalDocuments = func(child int) int { return queryCost + legalVersions*child }
	c.User.PendingLegalDocuments = func(child int) int { return queryCost + legalKinds*child }
	c.AcceptLegalDocumentsPayload.PendingLegalDocuments = func(child int) int { return 1 + legalKinds*child }
	c.Mutation.AcceptLegalDocuments = func(child int, in model.AcceptLegalDocumentsInput) int {
		return queryCost*(1+len(in.Documents)) + child
	}
	c.ServerInfo.Processors = func(child int) int { return 1 + processorRoles*child }
	c.Mutation.ContactSupport = func(child int, _ model.ContactSupportInput) int { return captchaCost + child }

	// Batched per operation through the loaders: no query of their own.
	c.Work.Images = func(child int) int { return 1 + imagesPerWork*child }
	c.Generation.QueuePosition = func(int) int { return queryCost }

	c.Mutation.SignUp = func(child int, _ model.SignUpInput) int { return hashCost + child }
	c.Mutation.SignIn = func(child int, _ model.SignInInput) int { return hashCost + child }
	c.Mutation.ChangePassword = func(child int, _ model.ChangePasswordInput) int { return 2*hashCost + child }
	c.Mutation.ResetPassword = func(child int, _ model.ResetPasswordInput) int { return hashCost + child }
	c.Mutation.ChangeEmail = func(child int, _ model.ChangeEmailInput) int { return hashCost + child }
	c.Mutation.UploadImage = func(child int, _ model.UploadImageInput) int { return imageCost + child }
	c.Mutation.CompleteUpload = func(child int, _ model.CompleteUploadInput) int { return imageCost + child }
	c.Mutation.GenerateImage = func(child int, _ model.GenerateImageInput) int { return generationCost + child }
	c.Mutation.EditImage = func(child int, _ model.EditImageInput) int { return generationCost + child }
	c.Mutation.RetryGeneration = func(child int, _ model.RetryGenerationInput) int { return generationCost + child }
	// The payload of restoreWorks lists the works restored: its selection
	// counts once per work.
	c.Mutation.DeleteWorks = func(child int, in model.DeleteWorksInput) int { return queryCost + len(in.WorkIds)*max(child, 1) }
	c.Mutation.RestoreWorks = func(child int, in model.RestoreWorksInput) int { return queryCost + len(in.WorkIds)*max(child, 1) }
	c.Mutation.PurgeWorks = func(child int, in model.PurgeWorksInput) int { return queryCost + len(in.WorkIds)*max(child, 1) }
	c.Mutation.EmptyBin = func(child int, _ *model.EmptyBinInput) int { return queryCost + binBatch + child }
	// Checkout may create the Stripe customer, find the price and create
	// the session: three calls.
	c.Mutation.CreateCheckoutSession = func(child int, _ model.CreateCheckoutSessionInput) int { return 3*stripeCost + child }
	c.Mutation.CreateBillingPortalSession = func(child int, _ model.CreateBillingPortalSessionInput) int { return stripeCost + child }
	c.Mutation.CancelSubscription = func(child int, _ model.CancelSubscriptionInput) int { return stripeCost + child }
	c.Mutation.ResumeSubscription = func(child int, _ model.ResumeSubscriptionInput) int { return stripeCost + child }
	c.Mutation.RefundPurchase = func(child int, _ model.RefundPurchaseInput) int { return stripeCost + child }
}

// page is the cost of a connection whose page size is first: its two
// queries and first times its selection. A size out of range is refused
// before any query, so it is costed as the largest allowed.
func page(first *int, child int) int {
	n := defaultPageSize
	if first != nil {
		n = min(max(*first, 1), maxPageSize)
	}
	return 2*queryCost + n*child
}
