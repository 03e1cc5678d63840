/**
 * The example script. fileconveyor minifies it (comments and whitespace go,
 * names get shorter) and publishes it under a unique name.
 */
function greetVisitor(visitorName) {
  const greeting = "Hello, " + visitorName + "!";
  const heading = document.querySelector("h1");
  if (heading) {
    heading.textContent = greeting;
  }
  return greeting;
}

document.addEventListener("DOMContentLoaded", function () {
  greetVisitor("fileconveyor user");
});
