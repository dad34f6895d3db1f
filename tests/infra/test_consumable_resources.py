def test_the_sandbox_reads_them_from_the_templates(assembly: cxapi.CloudAssembly) -> None:
    templates = {s.stack_name: s.template for s in assembly.stacks}
    resources = resources_from_templates(templates)
    assert resources.consumable_resources == (
        Consumable(f"{PREFIX}-hydrocron", "REPLENISHABLE", 3),
        Consumable(f"{PREFIX}-hydrocron_month", "NON_REPLENISHABLE", 15_000_000),
    )
    definitions = {d.name: d.consumables for d in resources.job_definitions}
    assert definitions[f"{PREFIX}-input"] == ((f"{PREFIX}-hydrocron", 1), (f"{PREFIX}-hydrocron_month", 70))
    assert definitions[f"{PREFIX}-output"] == ()
