using Sd.Engine.Schedulers;
using Sd.Loaders.Config;

namespace Sd.Engine.Tests;

/// <summary>
/// v_prediction (SD 2.x) and sample prediction, which the fixtures (epsilon only) do not cover. Oracle: diffusers turns
/// each model output into x0 (or epsilon) at the current sample and then runs the epsilon algorithm, so a run fed v
/// (or x0) must track a run of the fixture-checked epsilon path fed the epsilon diffusers' own conversion implies,
/// step after step with the multistep history. PNDM converts after combining its history, so it gets a direct
/// restatement of diffusers' step_plms instead.
/// </summary>
public sealed class SchedulerPredictionTests
{
    private const double Tolerance = 1e-5;
    private const int Length = 96;

    private static SchedulerConfig Config(string prediction, string spacing) =>
        Sd15SchedulerConfig.Value with { PredictionType = prediction, TimestepSpacing = spacing };

    [Theory]
    [InlineData("ddim", "v_prediction", "leading", 8)]
    [InlineData("ddim", "sample", "trailing", 8)]
    [InlineData("euler", "v_prediction", "leading", 8)]
    [InlineData("euler", "sample", "linspace", 8)]
    [InlineData("euler-karras", "v_prediction", "trailing", 8)]
    [InlineData("euler-a", "v_prediction", "linspace", 8)]
    [InlineData("euler-a", "v_prediction", "trailing", 8)]
    [InlineData("lms", "v_prediction", "linspace", 9)]
    [InlineData("lms", "v_prediction", "leading", 9)]
    [InlineData("lms-karras", "v_prediction", "linspace", 9)]
    [InlineData("lms", "sample", "trailing", 9)]
    [InlineData("dpm++-2m", "v_prediction", "linspace", 10)]
    [InlineData("dpm++-2m", "v_prediction", "leading", 10)]
    [InlineData("dpm++-2m", "v_prediction", "trailing", 10)]
    [InlineData("dpm++-2m-karras", "v_prediction", "linspace", 10)]
    [InlineData("dpm++-2m-karras", "sample", "trailing", 10)]
    [InlineData("dpm++-2m", "sample", "leading", 10)]
    [InlineData("dpm++-2m-sde", "v_prediction", "linspace", 10)]
    [InlineData("dpm++-2m-sde-karras", "sample", "trailing", 10)]
    [InlineData("unipc", "v_prediction", "linspace", 10)]
    [InlineData("unipc-karras", "sample", "trailing", 10)]
    [InlineData("heun", "v_prediction", "linspace", 6)]
    [InlineData("heun", "v_prediction", "leading", 6)]
    [InlineData("heun-karras", "sample", "trailing", 6)]
    [InlineData("lcm", "v_prediction", "leading", 4)]
    [InlineData("lcm", "sample", "leading", 6)]
    public void TracksTheEquivalentEpsilonRun(string name, string prediction, string spacing, int steps)
    {
        Scheduler run = Scheduler.Create(name, Config(prediction, spacing));
        Scheduler eps = Scheduler.Create(name, Config("epsilon", spacing));
        run.SetTimesteps(steps);
        eps.SetTimesteps(steps);
        Func<int, float[]> noise = i => Normals(1000 + i, 1);
        float[] x = Normals(7, eps.InitNoiseSigma), xEps = (float[])x.Clone();
        for (int k = 0; k < run.StepCount; k++)
        {
            float[] output = Normals(100 + k, 1.5);
            float[] epsilon = EquivalentEpsilon(eps, prediction, k, xEps, output);
            run.Step(output, k, x, noise);
            eps.Step(epsilon, k, xEps, noise);
            double rel = RelL2(x, xEps);
            Assert.True(rel <= Tolerance, $"{name} {prediction} {spacing}: step {k} relative L2 {rel:E3}");
        }
    }

    /// <summary>The epsilon whose epsilon-path step equals diffusers' step on <paramref name="output"/>.</summary>
    private static float[] EquivalentEpsilon(Scheduler s, string prediction, int k, float[] x, float[] output)
    {
        var eps = new float[x.Length];
        bool v = prediction == "v_prediction";
        if (s.Sigmas is null || s is MultistepSigmaScheduler)
        {
            // Alpha-sigma form. DDIM/LCM: alpha_t, sigma_t = sqrt(a), sqrt(1 - a) at the step's timestep; DPM++, UniPC:
            // _sigma_to_alpha_sigma_t(sigma) = 1 / sqrt(sigma^2 + 1), sigma * alpha_t. v: eps = alpha_t v + sigma_t x;
            // sample: eps = (x - alpha_t x0) / sigma_t.
            double alpha, sigma;
            if (s.Sigmas is { } sigmas)
            {
                alpha = 1 / Math.Sqrt((double)sigmas[k] * sigmas[k] + 1);
                sigma = sigmas[k] * alpha;
            }
            else
            {
                double a = s.AlphasCumprod[(int)s.Timesteps[k]];
                alpha = Math.Sqrt(a);
                sigma = Math.Sqrt(1 - a);
            }
            for (int i = 0; i < x.Length; i++)
            {
                eps[i] = (float)(v ? alpha * output[i] + sigma * x[i] : (x[i] - alpha * output[i]) / sigma);
            }
        }
        else
        {
            // Euler/LMS (sigma space): x0 = v * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1), or the
            // output itself; the epsilon path takes x0 = sample - sigma * eps.
            double sigma = s.Sigmas![k];
            for (int i = 0; i < x.Length; i++)
            {
                double x0 = v ? output[i] * (-sigma / Math.Sqrt(sigma * sigma + 1)) + x[i] / (sigma * sigma + 1) : output[i];
                eps[i] = (float)((x[i] - x0) / sigma);
            }
        }
        return eps;
    }

    [Theory]
    [InlineData("v_prediction", "leading", 8, 0)]
    [InlineData("v_prediction", "trailing", 8, 0)]
    [InlineData("v_prediction", "linspace", 3, 0)]
    [InlineData("v_prediction", "leading", 1, 0)]
    [InlineData("epsilon", "trailing", 8, 0)]
    [InlineData("epsilon", "leading", 10, 4)] // img2img: the run starts at call 4, diffusers' counter at 0
    [InlineData("epsilon", "leading", 10, 1)]
    public void PndmMatchesDiffusersStepPlms(string prediction, string spacing, int steps, int start)
    {
        SchedulerConfig config = Config(prediction, spacing);
        Scheduler s = Scheduler.Create("pndm", config);
        s.SetTimesteps(steps);
        double[] timesteps = DiffusersSchedules.Pndm(s.NumTrainTimesteps, steps, spacing, config.StepsOffset).Timesteps;
        Assert.Equal(timesteps.Length, s.StepCount);
        var reference = new PlmsReference(s.AlphasCumprod, s.NumTrainTimesteps / steps, prediction == "v_prediction");
        float[] x = Normals(3, 1);
        double[] expected = Array.ConvertAll(x, v => (double)v);
        for (int k = start; k < s.StepCount; k++)
        {
            float[] output = Normals(200 + k, 1);
            s.Step(output, k, x, null);
            expected = reference.Step(output, (int)timesteps[k], expected);
            double rel = RelL2(x, Array.ConvertAll(expected, v => (float)v));
            Assert.True(rel <= Tolerance, $"pndm {prediction} {spacing}: call {k} relative L2 {rel:E3}");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void DpmTakesAFirstOrderStepFirstWhereverTheRunStarts(int start)
    {
        // diffusers' DPM-Solver++ 2M (epsilon): x0 = (x - sigma_t eps) / alpha_t; the first step after set_timesteps is
        // first order, x' = (sigma_t / sigma_s) x - alpha_t (e^-h - 1) x0; later ones add -0.5 alpha_t (e^-h - 1) D1
        // with D1 = (x0 - x0_prev) h / h_prev. Recomputed here in float64.
        Scheduler s = Scheduler.Create("dpm++-2m", Config("epsilon", "linspace"));
        s.SetTimesteps(10);
        float[] x = Normals(5, s.InitNoiseSigma);
        double[] expected = Array.ConvertAll(x, v => (double)v);
        double[]? prevX0 = null;
        double prevLambda = 0;
        for (int k = start; k < start + 3; k++)
        {
            float[] eps = Normals(300 + k, 1);
            s.Step(eps, k, x, null);
            (double alphaS, double sigmaS) = AlphaSigma(s.Sigmas![k]);
            (double alphaT, double sigmaT) = AlphaSigma(s.Sigmas[k + 1]);
            double lambdaS = Math.Log(alphaS / sigmaS), h = Math.Log(alphaT / sigmaT) - lambdaS;
            double[] x0 = Combine(i => (expected[i] - sigmaS * eps[i]) / alphaS, x.Length);
            double[] current = expected, previous = prevX0 ?? x0;
            double r = prevX0 is null ? 0 : (lambdaS - prevLambda) / h;
            expected = Combine(i => sigmaT / sigmaS * current[i] - alphaT * (Math.Exp(-h) - 1) * x0[i]
                - (r == 0 ? 0 : 0.5 * alphaT * (Math.Exp(-h) - 1) * (x0[i] - previous[i]) / r), x.Length);
            (prevX0, prevLambda) = (x0, lambdaS);
            double rel = RelL2(x, Array.ConvertAll(expected, v => (float)v));
            Assert.True(rel <= Tolerance, $"dpm++-2m from step {start}: step {k} relative L2 {rel:E3}");
        }
    }

    [Theory]
    [InlineData("dpm++-2m-sde", 0)]
    [InlineData("dpm++-2m-sde-heun", 0)]
    [InlineData("dpm++-2m-sde-heun-karras", 3)]
    public void DpmSdeWeightsItsSecondOrderTermByItsSolverType(string name, int start)
    {
        // diffusers' sde-dpmsolver++ (epsilon): x' = (sigma_t / sigma_s e^-h) x + alpha_t (1 - e^-2h) x0 + c D1
        // + sigma_t sqrt(1 - e^-2h) noise, D1 = (x0 - x0_prev) h / h_prev, with c = 0.5 alpha_t (1 - e^-2h) for
        // solver_type "midpoint" and alpha_t ((1 - e^-2h) / (-2h) + 1) for "heun"; the first step has no D1 (and so
        // is the same for both). Recomputed here in float64.
        bool heun = name.Contains("heun", StringComparison.Ordinal);
        Scheduler s = Scheduler.Create(name, Config("epsilon", "linspace")), midpoint = Scheduler.Create("dpm++-2m-sde", Config("epsilon", "linspace"));
        s.SetTimesteps(10);
        midpoint.SetTimesteps(10);
        float[] x = Normals(5, s.InitNoiseSigma), first = (float[])x.Clone();
        double[] expected = Array.ConvertAll(x, v => (double)v);
        double[]? prevX0 = null;
        double prevLambda = 0;
        for (int k = start; k < start + 4; k++)
        {
            float[] eps = Normals(300 + k, 1), noise = Normals(700 + k, 1);
            s.Step(eps, k, x, i => noise);
            (double alphaS, double sigmaS) = AlphaSigma(s.Sigmas![k]);
            (double alphaT, double sigmaT) = AlphaSigma(s.Sigmas[k + 1]);
            double lambdaS = Math.Log(alphaS / sigmaS), h = Math.Log(alphaT / sigmaT) - lambdaS;
            double[] x0 = Combine(i => (expected[i] - sigmaS * eps[i]) / alphaS, x.Length);
            double[] current = expected, previous = prevX0 ?? x0;
            double r = prevX0 is null ? 0 : (lambdaS - prevLambda) / h, decay = -double.ExpM1(-2 * h);
            double c = heun ? alphaT * (decay / (-2 * h) + 1) : 0.5 * alphaT * decay;
            expected = Combine(i => sigmaT / sigmaS * Math.Exp(-h) * current[i] + alphaT * decay * x0[i]
                + (r == 0 ? 0 : c * (x0[i] - previous[i]) / r) + sigmaT * Math.Sqrt(decay) * noise[i], x.Length);
            (prevX0, prevLambda) = (x0, lambdaS);
            double rel = RelL2(x, Array.ConvertAll(expected, v => (float)v));
            Assert.True(rel <= Tolerance, $"{name} from step {start}: step {k} relative L2 {rel:E3}");
            if (k == start && heun && !name.EndsWith("-karras", StringComparison.Ordinal))
            {
                midpoint.Step(eps, k, first, i => noise);
                Assert.Equal(first, x);
            }
        }
    }

    private static (double Alpha, double Sigma) AlphaSigma(double sigma)
    {
        double alpha = 1 / Math.Sqrt(sigma * sigma + 1);
        return (alpha, sigma * alpha);
    }

    [Fact]
    public void LmsTakesItsOrderFromTheStepIndexAsDiffusersDoes()
    {
        // diffusers: order = min(step_index + 1, 4), coefficients zipped with the derivatives held. An img2img run
        // starting at index 5 therefore weights its one derivative by the order-4 formula's leading coefficient.
        var s = (LmsDiscreteScheduler)Scheduler.Create("lms", Config("epsilon", "linspace"));
        s.SetTimesteps(10);
        float[] x = Normals(6, s.InitNoiseSigma);
        float[] eps = Normals(400, 1);
        double[] expected = Combine(i => x[i] + s.LmsCoefficient(4, 5, 0) * eps[i], x.Length);
        s.Step(eps, 5, x, null);
        Assert.True(RelL2(x, Array.ConvertAll(expected, v => (float)v)) <= Tolerance);
        Assert.NotEqual(s.LmsCoefficient(4, 5, 0), s.LmsCoefficient(1, 5, 0));
    }

    /// <summary>diffusers PNDMScheduler.step_plms and _get_prev_sample (skip_prk_steps), in float64.</summary>
    private sealed class PlmsReference(float[] alphasCumprod, int ratio, bool vPrediction)
    {
        private readonly List<double[]> _ets = [];
        private double[]? _curSample;
        private int _counter;

        public double[] Step(float[] modelOutputF, int timestep, double[] sample)
        {
            double[] modelOutput = Array.ConvertAll(modelOutputF, v => (double)v);
            int prevTimestep = timestep - ratio;
            if (_counter != 1)
            {
                _ets.Add(modelOutput);
            }
            else
            {
                prevTimestep = timestep;
                timestep += ratio;
            }
            double[] e1 = _ets[^1];
            double[] combined;
            if (_ets.Count == 1 && _counter == 0)
            {
                combined = modelOutput;
                _curSample = sample;
            }
            else if (_ets.Count == 1 && _counter == 1)
            {
                combined = Combine(i => (modelOutput[i] + e1[i]) / 2, sample.Length);
                sample = _curSample!;
                _curSample = null;
            }
            else if (_ets.Count == 2)
            {
                double[] e2 = _ets[^2];
                combined = Combine(i => (3 * e1[i] - e2[i]) / 2, sample.Length);
            }
            else if (_ets.Count == 3)
            {
                double[] e2 = _ets[^2], e3 = _ets[^3];
                combined = Combine(i => (23 * e1[i] - 16 * e2[i] + 5 * e3[i]) / 12, sample.Length);
            }
            else
            {
                double[] e2 = _ets[^2], e3 = _ets[^3], e4 = _ets[^4];
                combined = Combine(i => 1.0 / 24 * (55 * e1[i] - 59 * e2[i] + 37 * e3[i] - 9 * e4[i]), sample.Length);
            }
            _counter++;
            return PrevSample(sample, timestep, prevTimestep, combined);
        }

        private double[] PrevSample(double[] sample, int timestep, int prevTimestep, double[] modelOutput)
        {
            double a = alphasCumprod[timestep];
            double aPrev = prevTimestep >= 0 ? alphasCumprod[prevTimestep] : alphasCumprod[0]; // set_alpha_to_one false
            double b = 1 - a, bPrev = 1 - aPrev;
            if (vPrediction)
            {
                modelOutput = Combine(i => Math.Sqrt(a) * modelOutput[i] + Math.Sqrt(b) * sample[i], sample.Length);
            }
            double sampleCoeff = Math.Sqrt(aPrev / a);
            double denom = a * Math.Sqrt(bPrev) + Math.Sqrt(a * b * aPrev);
            return Combine(i => sampleCoeff * sample[i] - (aPrev - a) * modelOutput[i] / denom, sample.Length);
        }
    }

    private static double[] Combine(Func<int, double> f, int n)
    {
        var r = new double[n];
        for (int i = 0; i < n; i++)
        {
            r[i] = f(i);
        }
        return r;
    }

    [Fact]
    public void DpmVPredictionFirstStepMatchesFormula()
    {
        // One hand-written step: convert_model_output x0 = alpha_t x - sigma_t v, then the first-order update
        // x_t = (sigma_t / sigma_s) x - alpha_t (exp(-h) - 1) x0 with lambda = log(alpha) - log(sigma).
        Scheduler s = Scheduler.Create("dpm++-2m", Config("v_prediction", "trailing"));
        s.SetTimesteps(5);
        float[] x = Normals(11, s.InitNoiseSigma), v = Normals(12, 1);
        var actual = (float[])x.Clone();
        s.Step(v, 0, actual, null);
        double sigS = s.Sigmas![0], sigT = s.Sigmas[1];
        double alphaS = 1 / Math.Sqrt(sigS * sigS + 1), sigmaS = sigS * alphaS;
        double alphaT = 1 / Math.Sqrt(sigT * sigT + 1), sigmaT = sigT * alphaT;
        double h = (Math.Log(alphaT) - Math.Log(sigmaT)) - (Math.Log(alphaS) - Math.Log(sigmaS));
        var expected = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double x0 = alphaS * x[i] - sigmaS * v[i];
            expected[i] = (float)(sigmaT / sigmaS * x[i] - alphaT * (Math.Exp(-h) - 1) * x0);
        }
        Assert.True(RelL2(actual, expected) <= Tolerance);
    }

    /// <summary>Deterministic standard normals (Box-Muller over a seeded System.Random), times <paramref name="scale"/>.</summary>
    private static float[] Normals(int seed, double scale)
    {
        var random = new Random(seed);
        var r = new float[Length];
        for (int i = 0; i < Length; i++)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            r[i] = (float)(scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return r;
    }

    private static double RelL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = actual[i] - (double)expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num / Math.Max(den, 1e-30));
    }
}
