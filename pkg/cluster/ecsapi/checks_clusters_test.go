package ecsapi

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// describeCluster reads one cluster back with include.
func (e *env) describeCluster(name string, include ...types.ClusterField) types.Cluster {
	e.t.Helper()
	out, err := e.c.DescribeClusters(e.ctx, &ecs.DescribeClustersInput{Clusters: []string{name}, Include: include})
	e.ok(err, "DescribeClusters")
	if len(out.Clusters) != 1 {
		e.t.Fatalf("DescribeClusters %s: %+v", name, out.Failures)
	}
	return out.Clusters[0]
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func settingValue(ss []types.ClusterSetting, name types.ClusterSettingName) string {
	for _, s := range ss {
		if s.Name == name {
			return aws.ToString(s.Value)
		}
	}
	return ""
}

func clusterChecks() map[string]func(*env) {
	return map[string]func(*env){
		"CreateCluster.clusterName": func(e *env) {
			e.cluster("lab")
			wantEq(e, "clusterArn", aws.ToString(e.describeCluster("lab").ClusterArn), "arn:aws:ecs:us-test-1:123456789012:cluster/lab")
			_, err := e.c.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String("bad name")})
			e.fails(err, "InvalidParameterException", "Cluster name")
		},
		"CreateCluster.tags": func(e *env) {
			_, err := e.c.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab"),
				Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}}})
			e.ok(err, "CreateCluster")
			wantEq(e, "tag team", tagMap(e.describeCluster("lab", types.ClusterFieldTags).Tags)["team"], "a")
		},
		"CreateCluster.settings": func(e *env) {
			_, err := e.c.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab"),
				Settings: []types.ClusterSetting{{Name: types.ClusterSettingNameContainerInsights, Value: aws.String("enabled")}}})
			e.ok(err, "CreateCluster")
			wantEq(e, "containerInsights", settingValue(e.describeCluster("lab", types.ClusterFieldSettings).Settings, types.ClusterSettingNameContainerInsights), "enabled")
		},
		"DeleteCluster.cluster": func(e *env) {
			e.cluster("lab")
			_, err := e.c.DeleteCluster(e.ctx, &ecs.DeleteClusterInput{Cluster: aws.String("lab")})
			e.ok(err, "DeleteCluster")
			wantEq(e, "status", aws.ToString(e.describeCluster("lab").Status), "INACTIVE")
		},
		"ListClusters.maxResults": checkListClustersPaging,
		"ListClusters.nextToken":  checkListClustersPaging,
		"DescribeClusters.clusters": func(e *env) {
			e.cluster("a")
			e.cluster("b")
			out, err := e.c.DescribeClusters(e.ctx, &ecs.DescribeClustersInput{Clusters: []string{"b", "nope"}})
			e.ok(err, "DescribeClusters")
			if len(out.Clusters) != 1 || aws.ToString(out.Clusters[0].ClusterName) != "b" || len(out.Failures) != 1 {
				e.t.Fatalf("DescribeClusters [b nope] = %+v", out)
			}
		},
		"DescribeClusters.include": func(e *env) {
			_, err := e.c.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String("lab"),
				Tags:     []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
				Settings: []types.ClusterSetting{{Name: types.ClusterSettingNameContainerInsights, Value: aws.String("enabled")}}})
			e.ok(err, "CreateCluster")
			plain := e.describeCluster("lab")
			if plain.Tags != nil || plain.Settings != nil || plain.Statistics != nil {
				e.t.Fatalf("without include: tags %v settings %v statistics %v, want none", plain.Tags, plain.Settings, plain.Statistics)
			}
			all := e.describeCluster("lab", types.ClusterFieldTags, types.ClusterFieldSettings, types.ClusterFieldStatistics)
			if len(all.Tags) != 1 || len(all.Settings) != 1 || len(all.Statistics) == 0 {
				e.t.Fatalf("with TAGS, SETTINGS, STATISTICS: tags %v settings %v statistics %v", all.Tags, all.Settings, all.Statistics)
			}
			_, err = e.c.DescribeClusters(e.ctx, &ecs.DescribeClustersInput{Clusters: []string{"lab"}, Include: []types.ClusterField{"NOPE"}})
			e.fails(err, "InvalidParameterException", "include")
		},
	}
}

func checkListClustersPaging(e *env) {
	e.cluster("a")
	e.cluster("b")
	checkPaging(e, func(max *int32, next *string) ([]string, *string, error) {
		out, err := e.c.ListClusters(e.ctx, &ecs.ListClustersInput{MaxResults: max, NextToken: next})
		if err != nil {
			return nil, nil, err
		}
		return out.ClusterArns, out.NextToken, nil
	})
}
