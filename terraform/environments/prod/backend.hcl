# Remote state of the prod environment (partial backend configuration of terraform/stack).
bucket       = "colors-prod-terraform-state"
key          = "colors/prod/terraform.tfstate"
encrypt      = true
use_lockfile = true
