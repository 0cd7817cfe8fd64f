using System.Runtime.CompilerServices;

// The engine's weight-binding tests build a WeightSet over a hand-made file without a model folder around it.
[assembly: InternalsVisibleTo("Sd.Engine.Tests")]

// The A1111 noise schedules space their timesteps with the same torch.linspace as the training betas (NoiseSchedule.TorchLinspace).
[assembly: InternalsVisibleTo("Sd.Engine")]

// The original-format ControlNet key map is checked name by name against SD 1.5's real names.
[assembly: InternalsVisibleTo("Sd.Loaders.Tests")]
