package logship

import (
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ContainerInfo describes the container whose log is shipped; drivers use
// it for stream names, tags and record fields.
type ContainerInfo struct {
	// ID is the full container id; Name is the task definition's name.
	ID, Name   string
	ImageName  string
	TaskARN    string
	TaskID     string
	TaskFamily string
	Cluster    string
	Labels     map[string]string
	// Env is the container's environment as KEY=value.
	Env []string
}

// Deps are what drivers need from the agent.
type Deps struct {
	// AWSCredentials signs awslogs requests: the task's execution role
	// when it has one, else the agent's own credentials.
	AWSCredentials aws.CredentialsProvider
	// AWSRegion is used when awslogs-region is not set.
	AWSRegion string
	// AWSLogsEndpoint is used when awslogs-endpoint is not set
	// (BERTH_AWSLOGS_ENDPOINT: the cluster endpoint's log store).
	AWSLogsEndpoint string
	// JournalSocket is journald's native socket; empty means
	// /run/systemd/journal/socket.
	JournalSocket string
	Logger        *slog.Logger
}

// NewDriver builds the driver named by a container's logConfiguration.
// opts must have passed ValidateOptions. json-file and none need no
// shipping and return (nil, nil).
func NewDriver(name string, opts map[string]string, info ContainerInfo, deps Deps) (Driver, error) {
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch name {
	case DriverJSONFile, DriverNone:
		return nil, nil
	case DriverAWSLogs:
		o, err := awsLogsOptions(opts, info)
		if err != nil {
			return nil, err
		}
		region := opts["awslogs-region"]
		if region == "" {
			region = deps.AWSRegion
		}
		endpoint := opts["awslogs-endpoint"]
		if endpoint == "" {
			endpoint = deps.AWSLogsEndpoint
		}
		if region == "" {
			return nil, fmt.Errorf("log driver awslogs: log opt \"awslogs-region\" is required (no agent default): %w", ErrInvalidOption)
		}
		o.Client = NewAWSLogsClient(region, endpoint, deps.AWSCredentials)
		o.Logger = logger
		return NewAWSLogs(o)
	case DriverJournald:
		return newJournald(opts, info, deps.JournalSocket)
	case DriverSyslog:
		return newSyslog(opts, info)
	case DriverFluentd:
		return newFluentd(opts, info)
	}
	return nil, fmt.Errorf("log driver %q: %w", name, ErrDriverNotAllowed)
}
