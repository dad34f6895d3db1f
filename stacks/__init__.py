"""The CDK stacks of Confluence on AWS: network, storage and Batch, all driven by confluence.yaml."""
