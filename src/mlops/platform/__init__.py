"""The platform every stage stands on: settings, S3 storage, datasets, config files, background processes, the local platform and local pipeline runs."""
