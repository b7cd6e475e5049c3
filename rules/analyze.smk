# Analyses: one generic rule over {study}/{analysis}. The registry entry
# (bnlab/analyses/<name>.py) declares what a job reads; the job writes the
# analysis folder results/studies/<study>/<analysis>/, fragment.json included.


rule analysis:
    input:
        unpack(lambda wc: analysis_inputs(wc.study, wc.analysis)),
    output:
        # `snakemake --report`: its figures and CSV tables, under the study, with the captions the analysis wrote
        report(
            directory(f"{R}/studies/{{study}}/{{analysis}}"),
            patterns=["{figure}.png", "{table}.csv"],
            caption="../report/snakemake/analysis_file.rst",
            # the study's config name: Snakemake makes each category a reST link target, which a title's
            # colon ("Smoke: ...") would break in every caption
            category="{study}",
            subcategory="{analysis}",
        ),
    log:
        f"{R}/logs/analysis/{{study}}/{{analysis}}.log",
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    params:
        # re-run when the study's text or the analysis's options change (titles are drawn in figures):
        # as plain data, which Snakemake compares with the last run's params (an object it would skip)
        study=lambda wc: PLAN.studies[wc.study].to_data(),
        options=lambda wc: PLAN.studies[wc.study].analysis_options[wc.analysis],
        extra=lambda wc: plan_extra(PLAN, PLAN.studies[wc.study], wc.analysis),
        plugins=PLAN.config["analysis_plugins"],
        # read by the caption template when `snakemake --report` runs (bnlab/report/snakemake_captions.py)
        captions=lambda wc, output: AnalysisCaptions(output[0]),
    script:
        "../scripts/analysis.py"
