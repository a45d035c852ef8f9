"""Train the point detector: thin wrapper over analysis.training.train (configured by analysis.training_config)."""

from django.core.management.base import BaseCommand, CommandError

from analysis import datasets, registry
from analysis.argtypes import non_negative_int, positive_int
from analysis.nets import ARCHS, BACKBONES
from analysis.loss import LossWeights
from analysis.training import train
from analysis.training_config import TrainConfig, TrainingError

# The default point-term weight, read from TrainConfig so the flag and the API stay in step.
POINT_WEIGHT = TrainConfig.__dataclass_fields__["loss_weights"].default_factory().point


class Command(BaseCommand):
    help = "Train the PD-L1 point detector from synthetic, exported-folder or DeepLIIF data."

    def add_arguments(self, parser):
        parser.add_argument("--source", action="append", required=True,
                            help="synthetic | folder:PATH | deepliif | db (repeatable)")
        parser.add_argument("--source-weights", metavar="W1,W2,...",
                            help="relative share of each --source in a batch, in order (default: equal)")
        parser.add_argument("--arch", default="fcn", choices=ARCHS)
        parser.add_argument("--backbone", default="resnet18", choices=BACKBONES)
        parser.add_argument("--steps", type=int, default=1000)
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--crop", type=int, default=TrainConfig.crop)
        parser.add_argument("--mpp", type=float, default=0.5, help="working resolution, µm/px")
        parser.add_argument("--lr", type=float, default=TrainConfig.lr)
        parser.add_argument("--out", required=True, help="output folder (checkpoints, model.pt, model card)")
        parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
        parser.add_argument("--checkpoint-every", type=int, default=100)
        parser.add_argument("--register", metavar="NAME", help="register the trained model under this name")
        parser.add_argument("--name", help="the model's name in its card and checkpoint (default: --register)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
        # The synthetic counts and size are not checked by TrainConfig: a negative count was taken as none.
        parser.add_argument("--synthetic-fields", type=positive_int, default=64, help="synthetic training fields")
        parser.add_argument("--synthetic-val", type=non_negative_int, default=8, help="held-out synthetic fields")
        parser.add_argument("--synthetic-size", type=positive_int, default=384, help="side of synthetic fields, px")
        parser.add_argument("--init-from", metavar="CHECKPOINT", help="start from these weights (fine-tuning)")
        parser.add_argument("--background-weight", type=float, default=TrainConfig.background_weight,
                            help="weight of the far-from-every-click background term; 0 for sparsely clicked data")
        parser.add_argument("--background-radius-um", type=float, default=TrainConfig.background_radius_um,
                            help="pixels farther than this from every click are background (exhaustive data)")
        parser.add_argument("--point-radius-um", type=float, default=TrainConfig.point_radius_um,
                            help="point term over a disc of this radius around each click (0: the clicked pixel)")
        parser.add_argument("--point-weight", type=float, default=POINT_WEIGHT,
                            help="weight of the point term (LCFCN's is 1; see TrainConfig.loss_weights)")
        parser.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps)
        parser.add_argument("--false-positive-weight", type=float, default=LossWeights.false_positive,
                            help="LCFCN false-positive term (0 for partly labelled real fields)")
        parser.add_argument("--stain-sigma", type=float, default=TrainConfig.stain_sigma,
                            help="HED stain jitter: each stain scaled by U(1-s, 1+s)")
        parser.add_argument("--stain-bias", type=float, default=TrainConfig.stain_bias,
                            help="HED stain jitter: each stain shifted by U(-b, b)")
        parser.add_argument("--scale-jitter", type=float, default=TrainConfig.scale_jitter,
                            help="rescale each crop by up to this fraction (0.25: x0.8-1.25), for uncertain pixel sizes")
        parser.add_argument("--max-minutes", type=float, help="stop (with a resumable checkpoint) after this long")
        parser.add_argument("--val-every", type=int, default=0, help="validate every N steps (0: only at the end)")
        parser.add_argument("--half", action="store_true", help="store the final model in fp16")
        parser.add_argument("--no-progress", action="store_true")

    @staticmethod
    def _parse_weights(text, n_sources):
        if text is None:
            return None
        try:
            weights = tuple(float(part) for part in text.split(","))
        except ValueError:
            raise CommandError(f"--source-weights {text!r}: give {n_sources} numbers separated by commas") from None
        if len(weights) != n_sources or not all(w > 0 and w != float("inf") for w in weights):
            raise CommandError(f"--source-weights {text!r}: give {n_sources} positive numbers, one per --source in order")
        return weights

    @staticmethod
    def _check_register_name(name):
        """The checks registry.register_checkpoint makes, made before training: they used to come only
        after the run (hours on a GPU), whose model then stayed unregistered."""
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_slug

        from analysis.choices import CLASSIC_DETECTOR
        from analysis.models import ModelVersion

        most = ModelVersion._meta.get_field("name").max_length
        try:
            validate_slug(name)
        except ValidationError:
            raise CommandError(f"--register {name!r}: a model name must be a slug (letters, digits, - and _)") from None
        if len(name) > most:
            raise CommandError(f"--register {name!r}: a model name is at most {most} characters")
        if name == CLASSIC_DETECTOR:
            raise CommandError(f"--register {name!r}: reserved for the classic pipeline")
        existing = ModelVersion.objects.filter(name=name).first()
        if existing is not None:
            # A version's weights never change, and a new run's weights are other weights.
            raise CommandError(f"--register {name!r}: a model is already registered under this name "
                               f"(sha256 {existing.sha256[:12]}); choose a new name")

    def handle(self, *args, **opts):
        if opts["register"] is not None:
            self._check_register_name(opts["register"])
        for spec in opts["source"]:
            try:
                datasets.parse_source(spec)
            except datasets.DatasetError as exc:
                raise CommandError(str(exc)) from None
        config = TrainConfig(
            out_dir=opts["out"], sources=tuple(opts["source"]), name=opts["name"] or opts["register"] or "",
            source_weights=self._parse_weights(opts["source_weights"], len(opts["source"])),
            arch=opts["arch"], backbone=opts["backbone"], steps=opts["steps"], batch_size=opts["batch_size"],
            crop=opts["crop"], mpp=opts["mpp"], lr=opts["lr"], seed=opts["seed"], device=opts["device"],
            checkpoint_every=opts["checkpoint_every"], resume=opts["resume"],
            synthetic_train=opts["synthetic_fields"], synthetic_val=opts["synthetic_val"],
            synthetic_size=opts["synthetic_size"], init_from=opts["init_from"],
            background_weight=opts["background_weight"], background_radius_um=opts["background_radius_um"],
            point_radius_um=opts["point_radius_um"], warmup_steps=opts["warmup_steps"],
            max_minutes=opts["max_minutes"], val_every=opts["val_every"],
            stain_sigma=opts["stain_sigma"], stain_bias=opts["stain_bias"], scale_jitter=opts["scale_jitter"],
            loss_weights=LossWeights(point=opts["point_weight"], false_positive=opts["false_positive_weight"]),
            half=opts["half"], progress=not opts["no_progress"],
        )
        try:
            result = train(config)
        except (TrainingError, datasets.DatasetError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"trained {result.steps_done} steps: {result.model_path}, card {result.card_path}")
        if opts["register"] and not result.finished:
            # A run stopped early (--max-minutes) is not the model asked for: registered, it would take the name
            # (its resume could then never be registered) and stand as a finished version. It is resumable.
            self.stderr.write(
                f"stopped at step {result.steps_done} of {config.steps} (--max-minutes): not finished, so not "
                f"registered as {opts['register']}. To finish and register it, run the same command with --resume added "
                f"(keeping --register {opts['register']}; --max-minutes again goes on in slices, and only the slice "
                f"that finishes registers): the checkpoint is {result.checkpoint_path}")
            return
        if opts["register"]:
            try:
                version = registry.register_checkpoint(
                    result.model_path, opts["register"], metrics=result.card["metrics"],
                    training_data=result.card["training_data"],
                )
            except registry.RegistryError as exc:
                raise CommandError(str(exc)) from None
            # Registered for research use: it is released for clinical use by its promotion on the Models
            # page (evaluated against the current default, with a reason), never from here.
            self.stdout.write(f"registered {version.name} (sha256 {version.sha256[:12]}) for research use")
