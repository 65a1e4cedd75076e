package agent

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/berth-dev/berth/pkg/config"
)

// sharedCredentialsEvery is how often the shared credentials file is read
// again, as the ECS agent's rotating provider does (ECS Anywhere's SSM
// agent replaces the file as its credentials rotate).
const sharedCredentialsEvery = time.Minute

// InstanceCredentials returns the agent's own AWS credentials from the
// configuration: the static AWS_ACCESS_KEY_ID keys; else, with ECS_EXTERNAL
// or ECS_ALTERNATE_CREDENTIAL_PROFILE set, the profile of the shared
// credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials),
// read again every minute; else nil, meaning the SDK's standard chain.
func InstanceCredentials(cfg *config.Config) aws.CredentialsProvider {
	if cfg.AWS.AccessKeyID != "" {
		return credentials.NewStaticCredentialsProvider(cfg.AWS.AccessKeyID, cfg.AWS.SecretAccessKey.Reveal(), cfg.AWS.SessionToken.Reveal())
	}
	if !cfg.Instance.External && cfg.Source("ECS_ALTERNATE_CREDENTIAL_PROFILE").Kind == config.SourceDefault {
		return nil
	}
	// The SDK reads this variable from the process environment too.
	file := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if file == "" {
		file = awsconfig.DefaultSharedCredentialsFilename()
	}
	return rotatingSharedCredentials(file, cfg.Instance.CredentialProfile, sharedCredentialsEvery)
}

// rotatingSharedCredentials reads profile from the shared credentials file
// and has the credentials expire after every, so that the cache reads the
// file again.
func rotatingSharedCredentials(file, profile string, every time.Duration) aws.CredentialsProvider {
	return aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		sc, err := awsconfig.LoadSharedConfigProfile(ctx, profile, func(o *awsconfig.LoadSharedConfigOptions) {
			o.CredentialsFiles = []string{file}
			o.ConfigFiles = []string{}
		})
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("read profile %q of %s: %w", profile, file, err)
		}
		if !sc.Credentials.HasKeys() {
			return aws.Credentials{}, fmt.Errorf("profile %q of %s has no access keys", profile, file)
		}
		creds := sc.Credentials
		creds.Source = "shared credentials file " + file
		creds.CanExpire, creds.Expires = true, time.Now().Add(every)
		return creds, nil
	}))
}
