"""Model names a client needs without the models themselves (no torch: the CLI runs in the
publisher's image too, for the cycle CronJob)."""

DEFAULT_MODEL = "dcgan-diffaug"
