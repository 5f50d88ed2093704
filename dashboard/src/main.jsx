import { render } from "preact";
import { App } from "./app.jsx";

// The page's figures, the rows it carries and the chart specs, as gather wrote them.
const data = JSON.parse(document.getElementById("rai-data").textContent);
const root = document.getElementById("app");
root.textContent = "";
render(<App data={data} />, root);
