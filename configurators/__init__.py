"""modelreg's configurators: apply, plan and run what the registry declares."""
