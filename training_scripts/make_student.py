"""`make student`: train, evaluate and package the fast student (see hf_sqa/training/student_pipeline.py).

    python training_scripts/make_student.py                       # every stage, resumable
    python training_scripts/make_student.py --stages label pack   # some stages
    python training_scripts/make_student.py --set final_steps=3000 compare_steps=500
"""

import argparse

from hf_sqa.training.recipe import parse_overrides
from hf_sqa.training.student_pipeline import STAGES, StudentPipeline


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="*", default=STAGES, help=f"stages to run (default: all of {STAGES})")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="StudentPipeline fields, e.g. final_steps=3000 work=data/student")
    args = parser.parse_args(argv)
    StudentPipeline(**parse_overrides(args.set, parser)).run(args.stages)


if __name__ == "__main__":
    main()
