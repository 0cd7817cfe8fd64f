using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// Restart (A1111's "Restart"; Xu et al., "Restart Sampling for Improving Generative Processes", 2023): Heun steps, the
/// step to 0 Euler, on a schedule that goes back up once or twice. From 20 steps on, the levels become a Karras ramp
/// of fewer steps between the schedule's ends (k-diffusion's float32 get_sigmas_karras), and after the step that
/// reaches the level nearest 0.1 the sample is noised back up to the level nearest 2 and walked down to where it was
/// along a second Karras ramp: once over 9 steps (20 to 35 steps), or twice over steps / 4 (36 and more). The steps add
/// up to the steps asked for, so n steps take 2n - 1 model calls, as Heun's. Below 20 steps it is Heun on the levels.
/// Each restart adds noise of scale sqrt(to^2 - from^2), from the level the sample is at to the one it restarts from,
/// drawn after the call that ends there (draw index = that call's step index), as A1111 draws it before the next step.
/// A run that starts part-way (img2img, inpainting) is planned anew over the steps it runs, as A1111 plans its img2img
/// over the levels left: skipping k of n steps restarts only when n - k is 20 or more.
/// Levels as Euler's (the config's spacing, or a ramp, whose ends the restart ramps span); every call's timestep is
/// its level's training time as A1111's model wrapper takes it (k-diffusion's float32 sigma_to_t); model inputs are
/// scaled and the data predicted as diffusers' Euler does.
/// Reference: A1111's restart_sampler (modules/sd_samplers_extra.py) with its automatic restart list.
/// </summary>
public sealed class RestartScheduler : HeunDiscreteScheduler
{
    /// <summary>The fewest steps A1111 restarts at.</summary>
    private const int FirstRestartingSteps = 20;

    /// <summary>The level a restart returns to (the one nearest it) and the level it restarts from.</summary>
    private const float RestartAt = 0.1f, RestartFrom = 2f;

    /// <summary>The inference steps the run being planned skips (img2img): the plan covers the rest.</summary>
    private int _skippedSteps;

    /// <summary>The run's first call and the schedule's level there, before the restart plan rebuilt it: a part-way
    /// start's picture is noised to it, as A1111 noises its img2img to the first of the levels left.</summary>
    private int _firstRunCall;
    private float _startLevel;

    /// <summary>Per call: whether noise follows its step (a restart), and its scale (A1111 draws whenever the next step
    /// starts higher, whatever the scale).</summary>
    private bool[] _restartsAfter = [];
    private float[] _noiseAfter = [];

    public RestartScheduler(SchedulerConfig config, TimestepSpacing? spacing = null, SigmaRamp ramp = SigmaRamp.Spaced)
        : base(config, spacing, ramp, "Restart", ZeroTerminalSnr.EndsAtFloor, float.PositiveInfinity)
    {
    }

    protected override void Schedule(int steps, int firstStep)
    {
        _skippedSteps = firstStep / Order;
        base.Schedule(steps, firstStep);
    }

    /// <summary>
    /// The steps as (from, to) levels, per call [from_0, to_0, from_1, to_1, ..., from_(n-1), 0] and the calls' training
    /// times; a step's second call is made at its "to", and where the next step starts higher, the noise that lifts
    /// the sample there follows that call.
    /// </summary>
    protected override (float[] Timesteps, float[] Sigmas) Arrange(float[] timesteps, float[] sigmas)
    {
        // The skipped steps are never run; they keep their levels, level to level, so that the run's calls keep
        // their indices (step k's first call is call 2k).
        int skipped = _skippedSteps;
        (float[] runFrom, float[] runTo) = Steps(sigmas[skipped..], skipped);
        float[] from = [.. sigmas[..skipped], .. runFrom], to = [.. sigmas[1..(skipped + 1)], .. runTo];
        int steps = from.Length;
        float[] logSigmas = Array.ConvertAll(TrainSigmas, MathF.Log);
        var levels = new float[2 * steps];
        var times = new float[2 * steps - 1];
        var restartsAfter = new bool[2 * steps - 1];
        var noiseAfter = new float[2 * steps - 1];
        for (int k = 0; k < steps; k++)
        {
            levels[2 * k] = from[k];
            times[2 * k] = SigmaRamps.TrainingTime(from[k], logSigmas);
            if (k == steps - 1)
            {
                break; // the last step ends at sigma 0: Euler, one call
            }
            levels[2 * k + 1] = to[k];
            times[2 * k + 1] = SigmaRamps.TrainingTime(to[k], logSigmas);
            if (from[k + 1] > to[k])
            {
                // torch: (old_sigma ** 2 - last_sigma ** 2) ** 0.5 on float32 levels.
                restartsAfter[2 * k + 1] = true;
                noiseAfter[2 * k + 1] = MathF.Sqrt(from[k + 1] * from[k + 1] - to[k] * to[k]);
            }
        }
        levels[^1] = 0f;
        (_restartsAfter, _noiseAfter) = (restartsAfter, noiseAfter);
        (_firstRunCall, _startLevel) = (2 * skipped, sigmas[skipped]);
        return (times, levels);
    }

    /// <summary>
    /// A1111's step list for <paramref name="sigmas"/> (the levels a run takes and the final 0): below 20 steps, level to
    /// level; else the main Karras ramp with the restart segments inserted after its step to the level nearest 0.1.
    /// Throws when that list would not be steps two-call steps and a last one-call step to 0 (where the level nearest
    /// 0.1 is 0 itself, or none lies nearer 2 above it), which A1111 would run with other step counts.
    /// </summary>
    private (float[] From, float[] To) Steps(float[] sigmas, int skipped)
    {
        int steps = sigmas.Length - 1;
        if (steps < FirstRestartingSteps) // none at all for a run that skips every step
        {
            return (sigmas[..^1], sigmas[1..]);
        }
        (int segmentSteps, int restarts) = steps >= 36 ? (steps / 4, 2) : (9, 1);
        float[] main = SigmaRamps.KDiffusionKarras(sigmas[^2], sigmas[0], steps - segmentSteps * restarts);
        int low = Nearest(main, RestartAt), high = Nearest(main, RestartFrom);
        if (low == main.Length - 1 || high >= low)
        {
            string run = skipped == 0 ? $"{steps} steps" : $"the {steps} steps left after skipping {skipped} of {steps + skipped}";
            throw new ArgumentOutOfRangeException("steps", steps + skipped,
                $"{Name}: over {run} the schedule runs from {main[0]} down to {main[^2]}, and Restart restarts after the level nearest {RestartAt} ({main[low]}) from the level nearest {RestartFrom} ({main[high]}) above it; " +
                $"{(low == main.Length - 1 ? "that is the final 0" : "there is none above it")}, so the restart cannot run as A1111 plans it: run fewer than {FirstRestartingSteps} steps{(skipped == 0 ? "" : " (a lower strength)")}, or noise levels that span {RestartAt} and {RestartFrom}");
        }
        // The segment's steps + 1 levels, its final 0 dropped: it ends at the level it restarted from.
        float[] segment = SigmaRamps.KDiffusionKarras(main[low], main[high], segmentSteps + 1)[..^1];
        var from = new float[steps];
        var to = new float[steps];
        int n = 0;
        for (int i = 0; i < main.Length - 1; i++)
        {
            (from[n], to[n]) = (main[i], main[i + 1]);
            n++;
            for (int r = 0; i + 1 == low && r < restarts; r++)
            {
                for (int j = 0; j < segmentSteps; j++)
                {
                    (from[n], to[n]) = (segment[j], segment[j + 1]);
                    n++;
                }
            }
        }
        return (from, to);
    }

    /// <summary>torch.argmin(abs(levels - value)) in float32: the first of the nearest levels.</summary>
    private static int Nearest(float[] levels, float value)
    {
        int best = 0;
        for (int i = 1; i < levels.Length; i++)
        {
            if (MathF.Abs(levels[i] - value) < MathF.Abs(levels[best] - value))
            {
                best = i;
            }
        }
        return best;
    }

    /// <summary>At the run's first call, the schedule's own level there, which the plan's Karras ramp may round otherwise.</summary>
    protected override float NoiseLevel(int stepIndex) => stepIndex == _firstRunCall ? _startLevel : base.NoiseLevel(stepIndex);

    /// <summary>Heun's second call; then, where the next step restarts higher, the noise that lifts the sample there.</summary>
    protected override void SecondCall(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        base.SecondCall(modelOutput, stepIndex, sample, noise);
        if (_restartsAfter[stepIndex])
        {
            AddScaledNoise(sample, Draw(noise, stepIndex, sample.Length), _noiseAfter[stepIndex]);
        }
    }
}
