package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/participant"
)

// ErrNotServed: the payload names a resource this server does not serve
// (INVALID_ARGUMENT).
var ErrNotServed = errors.New("demo: resource not served here")

// Server is a TCC participant serving the demo resources from one database,
// built on the participant SDK: the SDK runs the fence, this package only
// supplies the business handlers. It implements
// tccv1.ParticipantServiceServer and is safe for concurrent use.
type Server struct {
	*participant.Participant
}

var _ tccv1.ParticipantServiceServer = (*Server)(nil)

// ServerConfig configures NewServerConfig.
type ServerConfig struct {
	// DB holds the demo tables and the fence table (Migrate). Required.
	DB *gorm.DB
	// Resources are the resources served; all when empty.
	Resources []Resource
	// Logger receives the SDK's logs; nil discards them.
	Logger *slog.Logger
	// CheckBackAfter is how long a tried branch waits for Confirm or
	// Cancel before the check-back worker asks; zero means the SDK's
	// default.
	CheckBackAfter time.Duration
	// Clock overrides the system clock (tests).
	Clock participant.Clock
}

// NewServer returns a participant serving resources (all of them when none
// is given) from db, whose tables Migrate has created. A nil logger
// discards logs. It panics if db is nil.
func NewServer(db *gorm.DB, logger *slog.Logger, resources ...Resource) *Server {
	s, err := NewServerConfig(ServerConfig{DB: db, Resources: resources, Logger: logger})
	if err != nil {
		panic(err)
	}
	return s
}

// NewServerConfig returns a participant configured by cfg.
func NewServerConfig(cfg ServerConfig) (*Server, error) {
	resources := cfg.Resources
	if len(resources) == 0 {
		resources = AllResources()
	}
	served := make(map[Resource]bool, len(resources))
	for _, r := range resources {
		served[r] = true
	}
	p, err := participant.New(participant.Config{
		DB:      cfg.DB,
		Try:     handler(opTry),
		Confirm: handler(opConfirm),
		Cancel:  handler(opCancel),
		CheckRequest: func(r participant.Request) error {
			p, err := ParsePayload(r.Payload)
			if err != nil {
				return err
			}
			if !served[p.Resource] {
				return fmt.Errorf("%w: %s", ErrNotServed, p.Resource)
			}
			return nil
		},
		CheckBackAfter: cfg.CheckBackAfter,
		Logger:         cfg.Logger,
		Clock:          cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return &Server{Participant: p}, nil
}

// handler returns the SDK handler of phase o: it decodes the payload
// (already validated by CheckRequest) and applies o to its resource.
func handler(o op) participant.Handler {
	return func(_ context.Context, tx *gorm.DB, r participant.Request) error {
		p, err := ParsePayload(r.Payload)
		if err != nil {
			return err
		}
		return apply(tx, o, p)
	}
}
