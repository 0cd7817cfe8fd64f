using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// What diffusers' multistep solvers on noise levels share (DPMSolverMultistepScheduler, UniPCMultistepScheduler,
/// whose set_timesteps and add_noise are copies): the schedule, linspace over steps + 1 points with the last dropped
/// (or a <see cref="SigmaRamp"/>) and a final sigma of 0; the alpha, sigma and lambda of a noise level; add_noise. A derived solver
/// keeps a history of model outputs, so steps must be visited in order.
/// </summary>
public abstract class MultistepSigmaScheduler : Scheduler
{
    private readonly float[] _trainSigmas;

    protected MultistepSigmaScheduler(SchedulerConfig config, TimestepSpacing? spacing, SigmaRamp ramp, string name)
        : base(config, TimestepSpacing.Linspace, spacing, ZeroTerminalSnr.EndsAtFloor, ramp)
    {
        Name = name;
        _trainSigmas = TrainingSigmas();
        Refuse(config.Thresholding, name, "thresholding true");
        Refuse(config.FinalSigmasType != "zero", name, $"final_sigmas_type '{config.FinalSigmasType}'");
        RefuseFlowSigmas(config, name);
    }

    /// <summary>The solver's name in errors ("DPM++ 2M", "UniPC").</summary>
    protected string Name { get; }

    /// <summary>The noise level of each step, then the final 0.</summary>
    protected float[] StepSigmas { get; private set; } = [];

    public override IReadOnlyList<float>? Sigmas => StepSigmas;

    protected sealed override void Schedule(int steps, int firstStep)
    {
        // lambda_min_clipped = -inf, so last_timestep = N. Linspace and leading space over steps+1 points and drop the
        // last; trailing is the common one.
        int[] t = DiscreteTimesteps(steps, steps + 1);
        var sigmas = new float[steps + 1];
        if (Ramp != SigmaRamp.Spaced)
        {
            // The ramp runs over the whole training range whatever the spacing; the timesteps follow it, Karras's
            // rounded (np.round), an exponential or beta ramp's truncated (left unrounded, then cast to int64). Older
            // diffusers copies of these branches lack np.flip and ramp upward; Sd follows the fixed code. The ramps
            // diffusers lacks (KL optimal, Align Your Steps, Simple, Normal, SGM Uniform) round as Karras's do: each
            // call runs at the training timestep nearest its level's, where truncation would put a top level a hair
            // below 999 at 998.
            float[] logSigmas = Array.ConvertAll(_trainSigmas, MathF.Log);
            double[] levels = RampSigmasWithConfigEnds(Ramp, _trainSigmas, _trainSigmas[0], _trainSigmas[^1], steps, Name);
            bool truncates = Ramp is SigmaRamp.Exponential or SigmaRamp.Beta;
            for (int i = 0; i < steps; i++)
            {
                sigmas[i] = (float)levels[i];
                double time = RampTime(levels[i], logSigmas);
                t[i] = (int)(truncates ? time : NpRound(time));
            }
        }
        else
        {
            for (int i = 0; i < steps; i++)
            {
                sigmas[i] = (float)Interp(t[i], _trainSigmas);
            }
        }
        sigmas[steps] = 0f; // final_sigmas_type "zero"
        RequireFallingSigmas(sigmas, steps, firstStep, Name);
        InferenceSteps = steps;
        StepSigmas = sigmas;
        TimestepValues = Array.ConvertAll(t, v => (float)v);
        InitNoiseSigma = 1f;
        ResetHistory();
    }

    /// <summary>A new schedule: the solver forgets the model outputs of the last run.</summary>
    protected abstract void ResetHistory();

    /// <summary>diffusers' _sigma_to_alpha_sigma_t: the VP alpha and sigma of noise level <paramref name="sigma"/>.</summary>
    protected static (float Alpha, float Sigma) AlphaSigma(float sigma)
    {
        float alpha = 1f / MathF.Sqrt(sigma * sigma + 1f);
        return (alpha, sigma * alpha);
    }

    /// <summary>log(alpha) - log(sigma) of step <paramref name="index"/>'s noise level (+inf at the final 0).</summary>
    protected float Lambda(int index)
    {
        (float alpha, float sigma) = AlphaSigma(StepSigmas[index]);
        return MathF.Log(alpha) - MathF.Log(sigma);
    }

    /// <summary>The model output as the x0 prediction at step <paramref name="stepIndex"/> (convert_model_output, predict_x0).</summary>
    protected void PredictX0(ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, int stepIndex, Span<float> x0)
    {
        (float alpha, float sigmaT) = AlphaSigma(StepSigmas[stepIndex]);
        for (int i = 0; i < x0.Length; i++)
        {
            x0[i] = Prediction switch
            {
                PredictionType.VPrediction => alpha * sample[i] - sigmaT * modelOutput[i],
                PredictionType.Sample => modelOutput[i],
                _ => (sample[i] - sigmaT * modelOutput[i]) / alpha,
            };
        }
    }

    protected override void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        (float alpha, float sigma) = AlphaSigma(StepSigmas[stepIndex]);
        Blend(alpha, sigma, original, noise, destination);
    }
}
