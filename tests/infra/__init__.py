"""Tests of the CDK app (stacks, synthesis, cdk-nag, cfn-lint)."""
