package ecsapi

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	smithy "github.com/aws/smithy-go"

	"github.com/berth-dev/berth/pkg/cluster/records"
	"github.com/berth-dev/berth/pkg/cluster/store"
)

// validateSettings checks cluster settings: containerInsights only, with
// ECS's values.
func validateSettings(ss []types.ClusterSetting) error {
	for _, st := range ss {
		if st.Name != types.ClusterSettingNameContainerInsights {
			return invalidParam("settings: name %q is not a cluster setting (containerInsights).", st.Name)
		}
		switch aws.ToString(st.Value) {
		case "enabled", "disabled", "enhanced":
		default:
			return invalidParam("settings: containerInsights must be enabled, enhanced or disabled, got %q.", aws.ToString(st.Value))
		}
	}
	return nil
}

// mergeSettings sets add's settings over have's, by name.
func mergeSettings(have, add []types.ClusterSetting) []types.ClusterSetting {
	out := append([]types.ClusterSetting{}, have...)
	for _, a := range add {
		replaced := false
		for i := range out {
			if out[i].Name == a.Name {
				out[i], replaced = a, true
			}
		}
		if !replaced {
			out = append(out, a)
		}
	}
	return out
}

// updateSettings applies settings to an ACTIVE cluster and returns it as
// ECS answers an update: with its settings.
func (s *Server) updateSettings(clusterRef *string, settings []types.ClusterSetting, required bool) (*types.Cluster, error) {
	if clusterRef == nil {
		return nil, invalidParam("cluster is required.")
	}
	if required && len(settings) == 0 {
		return nil, invalidParam("settings is required.")
	}
	if err := validateSettings(settings); err != nil {
		return nil, err
	}
	name, err := s.clusterName(clusterRef)
	if err != nil {
		return nil, err
	}
	var out types.Cluster
	err = s.opts.Store.Update(func(tx store.Tx) error {
		rec, err := activeCluster(tx, name)
		if err != nil {
			return err
		}
		if len(settings) > 0 {
			rec.Cluster.Settings = mergeSettings(rec.Cluster.Settings, settings)
			if err := records.Put(tx, rec); err != nil {
				return err
			}
		}
		out, err = withCounts(tx, rec)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func (s *Server) updateCluster(c *call, in *ecs.UpdateClusterInput) (smithy.Serializable, error) {
	cl, err := s.updateSettings(in.Cluster, in.Settings, false)
	if err != nil {
		return nil, err
	}
	return &ecs.UpdateClusterOutput{Cluster: cl}, nil
}

func (s *Server) updateClusterSettings(c *call, in *ecs.UpdateClusterSettingsInput) (smithy.Serializable, error) {
	cl, err := s.updateSettings(in.Cluster, in.Settings, true)
	if err != nil {
		return nil, err
	}
	return &ecs.UpdateClusterSettingsOutput{Cluster: cl}, nil
}

// putClusterCapacityProviders accepts only what leaves a cluster without
// capacity providers (both lists empty; anything else is refused by name
// before it gets here), and answers with the cluster.
func (s *Server) putClusterCapacityProviders(c *call, in *ecs.PutClusterCapacityProvidersInput) (smithy.Serializable, error) {
	if in.CapacityProviders == nil || in.DefaultCapacityProviderStrategy == nil {
		return nil, invalidParam("capacityProviders and defaultCapacityProviderStrategy are required (empty lists: Berth has no capacity providers).")
	}
	cl, err := s.updateSettings(in.Cluster, nil, false)
	if err != nil {
		return nil, err
	}
	cl.CapacityProviders = []string{}
	cl.DefaultCapacityProviderStrategy = []types.CapacityProviderStrategyItem{}
	return &ecs.PutClusterCapacityProvidersOutput{Cluster: cl}, nil
}
